//! The input of the hot actions (SendMessage(Batch), ReceiveMessage, DeleteMessage
//! (Batch), ChangeMessageVisibility(Batch)) read straight from the JSON body into a
//! struct, strings borrowed from it: building a `serde_json::Value` tree per request
//! was a good part of the allocations the SQS load profiled.
//!
//! Every field takes any JSON value and is checked when the action reads it, with
//! the same errors [`super::input`] gives for a `Value` and in the same order as
//! before (the queue is looked up before the message is checked, for one). So the
//! typed path never fails where the `Value` one did not: a body it cannot read (a
//! repeated member, which `Value` takes the last of) goes the `Value` way and is then
//! read into this struct from the tree, as Query requests always are.

use super::SqsError;
use super::input::{Members, missing, wrong_type};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// The members of the hot actions' input shapes and of their batch entries, in one
/// struct (SendMessage and a SendMessageBatch entry share theirs): an action reads
/// only its own, the others are absent.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct Request<'a> {
    #[serde(borrow)]
    pub queue_url: Field<'a>,
    #[serde(borrow)]
    pub entries: List<Request<'a>>,
    #[serde(borrow)]
    pub id: Field<'a>,
    #[serde(borrow)]
    pub message_body: Field<'a>,
    #[serde(borrow)]
    pub delay_seconds: Field<'a>,
    pub message_attributes: Object,
    pub message_system_attributes: Object,
    #[serde(borrow)]
    pub message_group_id: Field<'a>,
    #[serde(borrow)]
    pub message_deduplication_id: Field<'a>,
    #[serde(borrow)]
    pub receipt_handle: Field<'a>,
    #[serde(borrow)]
    pub visibility_timeout: Field<'a>,
    #[serde(borrow)]
    pub max_number_of_messages: Field<'a>,
    #[serde(borrow)]
    pub wait_time_seconds: Field<'a>,
    #[serde(borrow)]
    pub attribute_names: StrList<'a>,
    #[serde(borrow)]
    pub message_system_attribute_names: StrList<'a>,
    #[serde(borrow)]
    pub message_attribute_names: StrList<'a>,
    #[serde(borrow)]
    pub receive_request_attempt_id: Field<'a>,
}

/// Whether `action` is read into a [`Request`].
pub fn is_hot(action: &str) -> bool {
    matches!(
        action,
        "SendMessage"
            | "SendMessageBatch"
            | "ReceiveMessage"
            | "DeleteMessage"
            | "DeleteMessageBatch"
            | "ChangeMessageVisibility"
            | "ChangeMessageVisibilityBatch"
    )
}

impl<'a> Request<'a> {
    /// From a JSON body; `None` when it takes the `Value` way (see the module
    /// comment). Only an object is read here: serde would take a struct from an
    /// array too, which the `Value` way refuses.
    pub fn from_json(body: &'a [u8]) -> Option<Request<'a>> {
        if body.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        serde_json::from_slice(body).ok()
    }

    /// From a parsed tree (Query requests, and bodies [`Request::from_json`] left).
    pub fn from_value(v: &'a Value) -> Result<Request<'a>, SqsError> {
        // Every field takes any value, so this fails only on a tree that is not an
        // object, which neither protocol hands over.
        Request::deserialize(v)
            .map_err(|_| SqsError::serialization("the request body is not a JSON object"))
    }
}

impl Members for Request<'_> {
    fn member_str(&self, name: &str) -> Result<Option<&str>, SqsError> {
        match name {
            "QueueUrl" => self.queue_url.opt_str(name),
            _ => Ok(None),
        }
    }
}

/// One scalar member as sent, whatever its JSON type.
#[derive(Default)]
pub enum Field<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Number(Number),
    /// A boolean, list or structure: only ever the wrong type here.
    Other,
}

impl<'a> Field<'a> {
    /// `input::opt_str`.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, SqsError> {
        match self {
            Field::Absent | Field::Null => Ok(None),
            Field::Str(s) => Ok(Some(s)),
            _ => Err(wrong_type(name, "a string")),
        }
    }

    /// `input::req_str`.
    pub fn req_str(&self, name: &str) -> Result<&str, SqsError> {
        self.opt_str(name)?.ok_or_else(|| missing(name))
    }

    /// The string, if the member is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Absent or `null`.
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent | Field::Null)
    }

    /// `input::opt_int`.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, SqsError> {
        match self {
            Field::Absent | Field::Null => Ok(None),
            Field::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(name, "an integer")),
            Field::Str(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| wrong_type(name, "an integer")),
            Field::Other => Err(wrong_type(name, "an integer")),
        }
    }

    /// `input::int_in`.
    pub fn int_in(&self, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, SqsError> {
        super::input::check_range(self.opt_int(name)?, name, lo, hi)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                // A string with escapes cannot be borrowed from the body.
                Ok(Field::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(s)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Field::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Field::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
                Ok(Number::from_f64(n).map_or(Field::Other, Field::Number))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A structure member (message attributes), kept as a tree: rare on the hot path,
/// and `convert::parse` reads it as one.
#[derive(Default)]
pub enum Object {
    #[default]
    Absent,
    Map(Map<String, Value>),
    Wrong,
}

impl Object {
    /// `input::opt_object`.
    pub fn get(&self, name: &str) -> Result<Option<&Map<String, Value>>, SqsError> {
        match self {
            Object::Absent => Ok(None),
            Object::Map(m) => Ok(Some(m)),
            Object::Wrong => Err(wrong_type(name, "a structure")),
        }
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Object::Absent,
            Value::Object(m) => Object::Map(m),
            _ => Object::Wrong,
        })
    }
}

/// A list of strings (`AttributeNames`...).
#[derive(Default)]
pub enum StrList<'a> {
    #[default]
    Absent,
    Items(Vec<Cow<'a, str>>),
    Wrong,
}

impl StrList<'_> {
    /// `input::strs`, borrowed.
    pub fn get(&self, name: &str) -> Result<Vec<&str>, SqsError> {
        match self {
            StrList::Absent => Ok(Vec::new()),
            StrList::Items(v) => Ok(v.iter().map(|s| &**s).collect()),
            StrList::Wrong => Err(wrong_type(name, "a list of strings")),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0).min(16));
                let mut wrong = false;
                // Read to the end even past a wrong item: the rest must be consumed.
                while let Some(f) = a.next_element::<Field<'de>>()? {
                    match f {
                        Field::Str(s) => items.push(s),
                        _ => wrong = true,
                    }
                }
                Ok(if wrong {
                    StrList::Wrong
                } else {
                    StrList::Items(items)
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrList::Wrong)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(StrList::Absent)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(StrList::Absent)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StrList::Wrong)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StrList::Wrong)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StrList::Wrong)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StrList::Wrong)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(StrList::Wrong)
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of structures (batch entries). An item that is no structure reads as one
/// with no members, as `Value::get` sees it.
#[derive(Default)]
pub enum List<T> {
    #[default]
    Absent,
    Items(Vec<T>),
    Wrong,
}

impl<T> List<T> {
    /// `input::list`.
    pub fn get(&self, name: &str) -> Result<&[T], SqsError> {
        match self {
            List::Absent => Ok(&[]),
            List::Items(v) => Ok(v),
            List::Wrong => Err(wrong_type(name, "a list")),
        }
    }
}

/// An item of a [`List`]: a `T` from a structure, a default one from anything else.
struct Item<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Item<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(a)).map(Item)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item(T::default()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Item(T::default()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0).min(16));
                while let Some(Item(t)) = a.next_element::<Item<T>>()? {
                    items.push(t);
                }
                Ok(List::Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List::Wrong)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(List::Absent)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(List::Absent)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(List::Wrong)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(List::Wrong)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(List::Wrong)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(List::Wrong)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(List::Wrong)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[path = "typed_tests.rs"]
mod tests;
