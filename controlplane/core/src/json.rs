//! How the API reads JSON bodies, shared by every door that takes them.

use serde::{Deserialize, Deserializer};

/// For `#[serde(default, deserialize_with = "given")]` on optional fields: a field that is
/// present is `Some`. So `null` is a value only where the schema says `nullable` (then
/// `T` is itself an `Option`, as for `telephone_event_pt`), and anywhere else it is
/// refused (naming the field) like any other wrong type: leave a field out for its
/// default.
pub fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}
