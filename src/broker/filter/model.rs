//! The compiled form of a filter policy, shared by the parser that builds it and
//! the matcher that reads it.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Attributes,
    Body,
}

/// Keys ANDed together, and `$or` groups each of which needs one branch to match.
#[derive(Debug, Default)]
pub(super) struct Node {
    pub keys: Vec<(String, Field)>,
    pub ors: Vec<Vec<Node>>,
}

#[derive(Debug)]
pub(super) enum Field {
    /// The array of conditions on a leaf key: any one matching is enough.
    Leaf(Vec<Matcher>),
    /// An object in the policy: the body's value at this key must be an object too.
    Nested(Node),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub(super) enum Matcher {
    Exact(Lit),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Lit>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
    Cidr(IpAddr, u8),
}
