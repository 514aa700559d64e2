//! Writing XML: JSON values as the elements a member's shape calls for, and the
//! escaping of text. Knows the shapes (`actions`), not the replies built from them.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::actions::Member;
use super::actions::Shape::{self, Bool, Int, List, Str, Struct};
use crate::awsquery::push_text;

pub(super) fn write_members(x: &mut String, members: &[Member], value: &Map<String, Value>) {
    for member in members {
        if let Some(v) = value.get(member.json) {
            write(x, member.query, member.shape, v);
        }
    }
}

fn write(x: &mut String, name: &str, shape: Shape, v: &Value) {
    match shape {
        Str | Int | Bool => {
            let text = match v {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
                _ => return,
            };
            open(x, name, "");
            push_text(x, &text);
            close(x, name, "");
        }
        List(item) => {
            for v in v.as_array().into_iter().flatten() {
                write(x, name, *item, v);
            }
        }
        Shape::Map { key, value, of } => {
            for (k, v) in v.as_object().into_iter().flatten() {
                let start = x.len();
                open(x, name, "");
                open(x, key, "");
                push_text(x, k);
                close(x, key, "");
                let before = x.len();
                write(x, value, *of, v);
                // No entry at all rather than a name without a value (a null, say).
                if x.len() == before {
                    x.truncate(start);
                } else {
                    close(x, name, "");
                }
            }
        }
        Struct(members) => {
            if let Some(fields) = v.as_object() {
                open(x, name, "");
                write_members(x, members, fields);
                close(x, name, "");
            }
        }
    }
}

pub(super) fn open(x: &mut String, name: &str, suffix: &str) {
    x.push('<');
    x.push_str(name);
    x.push_str(suffix);
    x.push('>');
}

pub(super) fn close(x: &mut String, name: &str, suffix: &str) {
    x.push_str("</");
    x.push_str(name);
    x.push_str(suffix);
    x.push('>');
}
