//! Query rewriting: a query and aggregations as analysts write them (Elasticsearch's
//! field names and semantics) mapped onto the tantivy schema, and tantivy's aggregation
//! results brought back to what Elasticsearch answers.

use serde_json::Value;
use tantivy::query::Occur;
use tantivy::query_grammar::{UserInputAst, UserInputBound, UserInputLeaf};

use super::ids::IdKey;
use super::schema::{EXTRA, ID_HIGH, ID_LOW};
use crate::doc_id::EventIdKey;
use crate::schema::{self, FieldKind};

/// Maps a query as analysts write it to the tantivy schema: unknown fields live under
/// `_extra`, `@timestamp` is `ts`, date-only bounds on `ts` become midnight UTC, an exact
/// time or number is a one-value range (they are columns, not terms), and so is each
/// half of an id.
///
/// `Err` is the message of a refused query: `event_id:X` without the id key.
pub(super) fn rewrite_ast(ast: UserInputAst, ids: Option<&EventIdKey>) -> std::result::Result<UserInputAst, String> {
    Ok(match ast {
        UserInputAst::Clause(children) => {
            let mut children = children
                .into_iter()
                .map(|(occur, child)| Ok((occur, rewrite_ast(child, ids)?)))
                .collect::<std::result::Result<Vec<_>, String>>()?;
            // Like Elasticsearch, a clause of only negations means "everything except".
            if !children.is_empty() && children.iter().all(|(occur, _)| *occur == Some(Occur::MustNot)) {
                children.push((Some(Occur::Should), UserInputAst::Leaf(Box::new(UserInputLeaf::All))));
            }
            UserInputAst::Clause(children)
        }
        UserInputAst::Boost(child, boost) => UserInputAst::Boost(Box::new(rewrite_ast(*child, ids)?), boost),
        UserInputAst::Leaf(leaf) => rewrite_leaf(*leaf, ids)?,
    })
}

fn rewrite_leaf(leaf: UserInputLeaf, ids: Option<&EventIdKey>) -> std::result::Result<UserInputAst, String> {
    let leaf = match leaf {
        UserInputLeaf::Literal(mut literal) if !literal.prefix => {
            let field = literal.field_name.as_deref().map(tantivy_field_name);
            match field.as_deref() {
                Some(name) if is_id_field(name) => return id_query(name, &literal.phrase, ids),
                Some(name) if is_column_only(name) => return Ok(exact_value(name, literal.phrase)),
                _ => literal.field_name = field,
            }
            UserInputLeaf::Literal(literal)
        }
        UserInputLeaf::Literal(mut literal) => {
            literal.field_name = literal.field_name.map(|f| tantivy_field_name(&f));
            UserInputLeaf::Literal(literal)
        }
        UserInputLeaf::Range { field, lower, upper } => {
            let field = field.map(|f| tantivy_field_name(&f));
            let is_ts = field.as_deref() == Some(schema::TS);
            let fix = |bound: UserInputBound| if is_ts { widen_date_bound(bound) } else { bound };
            UserInputLeaf::Range { field, lower: fix(lower), upper: fix(upper) }
        }
        UserInputLeaf::Set { field, elements } => {
            let field = field.map(|f| tantivy_field_name(&f));
            match field.as_deref() {
                Some(name) if is_id_field(name) => {
                    let alternatives = elements.iter().map(|e| Ok((Some(Occur::Should), id_query(name, e, ids)?)));
                    return Ok(UserInputAst::Clause(alternatives.collect::<std::result::Result<_, String>>()?));
                }
                Some(name) if is_column_only(name) => {
                    let alternatives = elements.into_iter().map(|e| (Some(Occur::Should), exact_value(name, e)));
                    return Ok(UserInputAst::Clause(alternatives.collect()));
                }
                _ => UserInputLeaf::Set { field, elements },
            }
        }
        UserInputLeaf::Exists { field } => UserInputLeaf::Exists { field: tantivy_field_name(&field) },
        UserInputLeaf::Regex { field, pattern } => {
            UserInputLeaf::Regex { field: field.map(|f| tantivy_field_name(&f)), pattern }
        }
        other => other,
    };
    Ok(UserInputAst::Leaf(Box::new(leaf)))
}

/// Whether a field is kept as a column without terms (times and numbers).
fn is_column_only(field: &str) -> bool {
    matches!(schema::field_spec(field).map(|s| s.kind), Some(FieldKind::Time | FieldKind::Number))
}

/// `field:value` on a column: the range of that one value. A date alone on `ts` is the
/// whole day (UTC), as Elasticsearch matches it.
fn exact_value(field: &str, value: String) -> UserInputAst {
    let (lower, upper) = match next_day(field, &value) {
        Some(next) => (widen_date_bound(UserInputBound::Inclusive(value)), UserInputBound::Exclusive(next)),
        None => (UserInputBound::Inclusive(value.clone()), UserInputBound::Inclusive(value)),
    };
    UserInputAst::Leaf(Box::new(UserInputLeaf::Range { field: Some(field.to_string()), lower, upper }))
}

/// Midnight UTC after `value` when `field` is `ts` and `value` is a date alone.
fn next_day(field: &str, value: &str) -> Option<String> {
    if field != schema::TS || value.len() != 10 {
        return None;
    }
    let day = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    Some(format!("{}T00:00:00Z", day.succ_opt()?.format("%Y-%m-%d")))
}

/// Whether values of `field` are answered through `_id`: the id itself, or the
/// `event_id` it derives from.
fn is_id_field(field: &str) -> bool {
    field == schema::ID || field == schema::EVENT_ID
}

/// `field:value` on an id field (see [`is_id_field`]): the one-value ranges of the id's
/// halves on the `_id_high` and `_id_low` columns.
///
/// An `event_id` is looked up through its keyed id, so it needs the id key: refused
/// without it (never an unkeyed id, which would confirm guesses).
fn id_query(field: &str, value: &str, ids: Option<&EventIdKey>) -> std::result::Result<UserInputAst, String> {
    let id = if field == schema::EVENT_ID {
        let key = ids.ok_or_else(|| NO_ID_KEY.to_string())?;
        IdKey::of_event_id(key, value)
    } else {
        IdKey::of(value)
    };
    let high = exact_value(ID_HIGH, id.high().to_string());
    let low = exact_value(ID_LOW, id.low().to_string());
    Ok(UserInputAst::Clause(vec![(Some(Occur::Must), high), (Some(Occur::Must), low)]))
}

/// Why an `event_id:` query was refused, and what to do.
pub const NO_ID_KEY: &str = "event_id: queries need the key the index was ingested with, since document ids are \
    keyed: set TIX_PII_KEY (at least 32 bytes) to that key, or search by _id or another field";

fn widen_date_bound(bound: UserInputBound) -> UserInputBound {
    let widen =
        |s: String| if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') { format!("{s}T00:00:00Z") } else { s };
    match bound {
        UserInputBound::Inclusive(s) => UserInputBound::Inclusive(widen(s)),
        UserInputBound::Exclusive(s) => UserInputBound::Exclusive(widen(s)),
        UserInputBound::Unbounded => UserInputBound::Unbounded,
    }
}

/// The tantivy field path for a field name as written in a query or aggregation.
pub fn tantivy_field_name(name: &str) -> String {
    if name == schema::ES_TIMESTAMP {
        return schema::TS.to_string();
    }
    if name == schema::ID || schema::is_known_path(name) {
        name.to_string()
    } else {
        format!("{}.{}", EXTRA, name)
    }
}

/// An Elasticsearch-shaped aggregation request with every field (sub-aggregations'
/// too) named as the tantivy schema names it.
pub(super) fn rewrite_agg_field(request: &Value) -> Value {
    let mut request = request.clone();
    if let Some(object) = request.as_object_mut() {
        for (key, body) in object.iter_mut() {
            if key == "aggs" {
                if let Some(subs) = body.as_object_mut() {
                    for sub in subs.values_mut() {
                        *sub = rewrite_agg_field(sub);
                    }
                }
            } else if let Some(body) = body.as_object_mut() {
                if let Some(Value::String(field)) = body.get("field").cloned() {
                    body.insert("field".into(), Value::String(tantivy_field_name(&field)));
                }
            }
        }
    }
    request
}

/// Brings tantivy's result for `request` to what Elasticsearch answers, down through
/// the buckets' sub-aggregations: a cardinality is a whole number (tantivy writes its
/// sketch's estimate as a float, and `null` over no documents, where Elasticsearch
/// answers 0).
pub(super) fn finish_agg_result(request: &Value, result: &mut Value) {
    if request.get("cardinality").is_some() {
        let estimate = result.get("value").and_then(Value::as_f64).unwrap_or(0.0);
        if let Some(object) = result.as_object_mut() {
            object.insert("value".into(), Value::from(estimate.round().max(0.0) as u64));
        }
        return;
    }
    let (Some(Value::Object(subs)), Some(buckets)) =
        (request.get("aggs"), result.get_mut("buckets").and_then(Value::as_array_mut))
    else {
        return;
    };
    for bucket in buckets {
        for (name, sub) in subs {
            if let Some(sub_result) = bucket.get_mut(name) {
                finish_agg_result(sub, sub_result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_date_alone_on_ts_is_the_whole_utc_day_and_other_exact_values_one_value() {
        use tantivy::query_grammar::{UserInputAst, UserInputBound, UserInputLeaf};
        let range = |ast: UserInputAst| match ast {
            UserInputAst::Leaf(leaf) => match *leaf {
                UserInputLeaf::Range { field, lower, upper } => (field.unwrap_or_default(), lower, upper),
                other => panic!("not a range: {other:?}"),
            },
            other => panic!("not a leaf: {other:?}"),
        };
        let inclusive = |s: &str| UserInputBound::Inclusive(s.to_string());
        assert_eq!(
            range(super::exact_value("ts", "2024-02-29".into())),
            ("ts".into(), inclusive("2024-02-29T00:00:00Z"), UserInputBound::Exclusive("2024-03-01T00:00:00Z".into()))
        );
        assert_eq!(
            range(super::exact_value("ts", "2024-02-05T06:00:00.000Z".into())),
            ("ts".into(), inclusive("2024-02-05T06:00:00.000Z"), inclusive("2024-02-05T06:00:00.000Z"))
        );
        assert_eq!(
            range(super::exact_value("amount", "150000".into())),
            ("amount".into(), inclusive("150000"), inclusive("150000"))
        );
    }
}
