//! Reading SNS's Query parameters. SNS lists and maps are not flattened, unlike SQS's:
//! `Tags.member.N.Key`, `Attributes.entry.N.key`, `MessageAttributes.entry.N.Name`.

use super::error::SnsError;
use crate::sqs::digest::AttributeValue;
use std::collections::{BTreeMap, BTreeSet};

/// One request's parameters; when a name repeats, the first one counts.
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Params {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Params(map)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter; AWS words its absence as an invalid parameter.
    pub fn req(&self, name: &str) -> Result<&str, SnsError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(SnsError::bad(name)),
        }
    }

    /// The indices N present as `{prefix}.N` or `{prefix}.N.*`, in numeric order.
    fn indices(&self, prefix: &str) -> BTreeSet<u32> {
        let prefix = format!("{prefix}.");
        self.0
            .range(prefix.clone()..)
            .map_while(|(k, _)| k.strip_prefix(prefix.as_str()))
            .filter_map(|rest| {
                let n = rest.split('.').next().unwrap_or(rest);
                // Only the canonical spelling, so two names cannot claim one item.
                (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| n.parse().ok())
                    .flatten()
            })
            .collect()
    }

    /// `{name}.member.N` as plain values.
    pub fn list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.member");
        self.indices(&prefix)
            .into_iter()
            .filter_map(|n| self.get(&format!("{prefix}.{n}")).map(str::to_string))
            .collect()
    }

    /// The prefixes `{name}.member.N` of a list of structures.
    pub fn members(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.member");
        self.indices(&prefix)
            .into_iter()
            .map(|n| format!("{prefix}.{n}"))
            .collect()
    }

    /// A map at `{name}.entry.N.{key}` / `{name}.entry.N.{value}`.
    pub fn map(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<BTreeMap<String, String>, SnsError> {
        let prefix = format!("{name}.entry");
        let mut out = BTreeMap::new();
        for n in self.indices(&prefix) {
            let k = self.get(&format!("{prefix}.{n}.{key}"));
            let v = self.get(&format!("{prefix}.{n}.{value}"));
            match (k, v) {
                (Some(k), Some(v)) => out.insert(k.to_string(), v.to_string()),
                (Some(k), None) => out.insert(k.to_string(), String::new()),
                _ => return Err(SnsError::bad(format!("{prefix}.{n}.{key}"))),
            };
        }
        Ok(out)
    }

    /// `Tags.member.N.Key` / `.Value` under `prefix`.
    pub fn tags(&self, name: &str) -> Result<BTreeMap<String, String>, SnsError> {
        let mut out = BTreeMap::new();
        for m in self.members(name) {
            let k = self
                .get(&format!("{m}.Key"))
                .ok_or_else(|| SnsError::bad(format!("{m}.Key")))?;
            let v = self.get(&format!("{m}.Value")).unwrap_or("");
            out.insert(k.to_string(), v.to_string());
        }
        Ok(out)
    }

    /// `{prefix}MessageAttributes.entry.N.Name` / `.Value.DataType` / `.StringValue` /
    /// `.BinaryValue` as the JSON protocol's map, for SQS's attribute checks.
    pub fn message_attributes(
        &self,
        prefix: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SnsError> {
        let base = format!("{prefix}MessageAttributes.entry");
        let mut out = serde_json::Map::new();
        for n in self.indices(&base) {
            let e = format!("{base}.{n}");
            let name = self
                .get(&format!("{e}.Name"))
                .ok_or_else(|| SnsError::bad(format!("{e}.Name")))?;
            let mut v = serde_json::Map::new();
            for field in ["DataType", "StringValue", "BinaryValue"] {
                if let Some(x) = self.get(&format!("{e}.Value.{field}")) {
                    v.insert(field.into(), x.into());
                }
            }
            out.insert(name.to_string(), serde_json::Value::Object(v));
        }
        Ok(out)
    }
}

/// What a `String.Array` value must be: a JSON array of strings, numbers, booleans
/// and nulls.
pub fn check_string_array(name: &str, a: &AttributeValue) -> Result<(), SnsError> {
    if a.data_type != "String.Array" {
        return Ok(());
    }
    let ok = a
        .string_value
        .as_deref()
        .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(s).ok())
        .is_some_and(|items| items.iter().all(|i| !i.is_array() && !i.is_object()));
    if ok {
        Ok(())
    } else {
        Err(SnsError::invalid_parameter_value(format!(
            "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn lists_maps_and_attributes() {
        let q = p(&[
            ("Attributes.entry.2.key", "B"),
            ("Attributes.entry.2.value", "2"),
            ("Attributes.entry.1.key", "A"),
            ("Attributes.entry.1.value", "1"),
            ("Tags.member.1.Key", "k"),
            ("Tags.member.1.Value", "v"),
            ("TagKeys.member.10", "z"),
            ("TagKeys.member.2", "y"),
            ("MessageAttributes.entry.1.Name", "k"),
            ("MessageAttributes.entry.1.Value.DataType", "String"),
            ("MessageAttributes.entry.1.Value.StringValue", "v"),
        ]);
        let m = q.map("Attributes", "key", "value").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "2");
        assert_eq!(q.tags("Tags").unwrap()["k"], "v");
        assert_eq!(q.list("TagKeys"), vec!["y", "z"]);
        let a = q.message_attributes("").unwrap();
        assert_eq!(a["k"]["StringValue"], "v");
        assert!(q.req("TopicArn").is_err());
    }
}
