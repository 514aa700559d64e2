//! Reading the JSON protocol's input shapes with AWS's errors for what is missing or
//! of the wrong type.

use super::SqsError;
use serde_json::Value;

pub fn missing(name: &str) -> SqsError {
    SqsError::missing_parameter(format!("The request must contain the parameter {name}."))
}

pub fn wrong_type(name: &str, want: &str) -> SqsError {
    SqsError::invalid_parameter_value(format!(
        "Value for parameter {name} is invalid. Reason: must be {want}."
    ))
}

pub fn opt_str<'a>(v: &'a Value, name: &str) -> Result<Option<&'a str>, SqsError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(name, "a string")),
    }
}

/// What the checks made before an action runs (permissions, the queue it names) read
/// of its input, whether a `Value` tree or a typed request.
pub trait Members {
    /// A string member: `opt_str`.
    fn member_str(&self, name: &str) -> Result<Option<&str>, SqsError>;
}

impl Members for Value {
    fn member_str(&self, name: &str) -> Result<Option<&str>, SqsError> {
        opt_str(self, name)
    }
}

pub fn req_str<'a>(v: &'a Value, name: &str) -> Result<&'a str, SqsError> {
    opt_str(v, name)?.ok_or_else(|| missing(name))
}

/// An integer parameter; JSON numbers, and strings holding one (the Query protocol
/// and lenient clients).
pub fn opt_int(v: &Value, name: &str) -> Result<Option<i64>, SqsError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| wrong_type(name, "an integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| wrong_type(name, "an integer")),
        Some(_) => Err(wrong_type(name, "an integer")),
    }
}

/// An integer parameter within `lo..=hi`, with AWS's wording when it is not.
pub fn int_in(v: &Value, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, SqsError> {
    check_range(opt_int(v, name)?, name, lo, hi)
}

/// AWS's wording for an integer parameter outside `lo..=hi`.
pub fn check_range(n: Option<i64>, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, SqsError> {
    match n {
        Some(n) if n < lo || n > hi => Err(SqsError::invalid_parameter_value(format!(
            "Value {n} for parameter {name} is invalid. Reason: Must be between {lo} and {hi}, if provided."
        ))),
        other => Ok(other),
    }
}

/// A list of strings (absent = empty).
pub fn strs(v: &Value, name: &str) -> Result<Vec<String>, SqsError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type(name, "a list of strings"))
            })
            .collect(),
        Some(_) => Err(wrong_type(name, "a list of strings")),
    }
}

/// A map of strings to strings (absent = empty).
pub fn str_map(v: &Value, name: &str) -> Result<Vec<(String, String)>, SqsError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                // Lenient clients send numbers and booleans for attribute values.
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err(wrong_type(name, "a map of strings")),
            })
            .collect(),
        Some(_) => Err(wrong_type(name, "a map of strings")),
    }
}

// The two below read only batch entries and message attributes, which now come
// through `typed`; kept as the reference its tests check it against.

#[cfg(test)]
pub fn opt_object<'a>(
    v: &'a Value,
    name: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, SqsError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(wrong_type(name, "a structure")),
    }
}

/// A list of structures (batch entries).
#[cfg(test)]
pub fn list<'a>(v: &'a Value, name: &str) -> Result<&'a [Value], SqsError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(wrong_type(name, "a list")),
    }
}
