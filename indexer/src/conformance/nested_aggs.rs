//! Conformance: nested aggregations. (Being written: see the helper's task.)

use super::Factory;

/// Terms aggregations with sub-aggregations answer in Elasticsearch's shape.
pub fn nested_aggregations(_factory: &dyn Factory) {
    unimplemented!("nested_aggregations is being written")
}
