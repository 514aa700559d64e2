//! AddPermission and RemovePermission: statements in the topic's `Policy`
//! attribute, labelled by `Sid`, as AWS edits them. The policy is stored and
//! returned, not enforced (the broker's own permissions decide who may act).

use super::{Params, Sns, SnsError};
use serde_json::{Value, json};

/// The actions a topic policy statement may name (`SNS:<action>`).
const ACTIONS: &[&str] = &[
    "GetTopicAttributes",
    "SetTopicAttributes",
    "AddPermission",
    "RemovePermission",
    "DeleteTopic",
    "Subscribe",
    "ListSubscriptionsByTopic",
    "Publish",
    "Receive",
];

/// One name or several, as AWS writes a statement's Principal and Action.
fn one_or_many(items: Vec<String>) -> Value {
    match <[String; 1]>::try_from(items) {
        Ok([one]) => Value::String(one),
        Err(many) => Value::from(many),
    }
}

impl Sns {
    pub(super) async fn add_permission(&self, p: &Params) -> Result<(), SnsError> {
        let arn = p.req("TopicArn")?;
        let name = self.topic_of(arn)?;
        let label = p.req("Label")?;
        let accounts = p.list("AWSAccountId");
        let actions = p.list("ActionName");
        if accounts.is_empty() {
            return Err(SnsError::bad("AWSAccountId"));
        }
        if actions.is_empty() {
            return Err(SnsError::bad("ActionName"));
        }
        if actions.iter().any(|a| !ACTIONS.contains(&a.as_str())) {
            return Err(SnsError::bad(
                "Policy statement action out of service scope!",
            ));
        }
        let mut meta = self.topic(&name).ok_or_else(SnsError::no_topic)?;
        let mut policy = self.policy_of(&meta, arn)?;
        let statements = statements(&mut policy)?;
        if statements.iter().any(|s| s["Sid"] == label) {
            return Err(SnsError::bad("Statement already exists"));
        }
        let principals = accounts
            .iter()
            .map(|a| format!("arn:aws:iam::{a}:root"))
            .collect();
        statements.push(json!({
            "Sid": label,
            "Effect": "Allow",
            "Principal": {"AWS": one_or_many(principals)},
            "Action": one_or_many(actions.iter().map(|a| format!("SNS:{a}")).collect()),
            "Resource": arn,
        }));
        meta.attributes.insert("Policy".into(), policy.to_string());
        self.put_topic(&name, Some(&meta)).await
    }

    /// Removing a label that is not there succeeds, as on AWS.
    pub(super) async fn remove_permission(&self, p: &Params) -> Result<(), SnsError> {
        let arn = p.req("TopicArn")?;
        let name = self.topic_of(arn)?;
        let label = p.req("Label")?;
        let mut meta = self.topic(&name).ok_or_else(SnsError::no_topic)?;
        let mut policy = self.policy_of(&meta, arn)?;
        let statements = statements(&mut policy)?;
        let before = statements.len();
        statements.retain(|s| s["Sid"] != label);
        if statements.len() != before {
            meta.attributes.insert("Policy".into(), policy.to_string());
            self.put_topic(&name, Some(&meta)).await?;
        }
        Ok(())
    }

    /// The topic's policy as set, or the default one AWS gives a new topic.
    fn policy_of(&self, meta: &super::meta::TopicMeta, arn: &str) -> Result<Value, SnsError> {
        let text = match meta.attributes.get("Policy") {
            Some(p) if !p.is_empty() => p.clone(),
            _ => self.default_policy(arn),
        };
        serde_json::from_str(&text).map_err(|_| SnsError::bad("Policy Error: null"))
    }
}

/// The policy's statement list (made if a policy set by hand has none).
fn statements(policy: &mut Value) -> Result<&mut Vec<Value>, SnsError> {
    let obj = policy
        .as_object_mut()
        .ok_or_else(|| SnsError::bad("Policy Error: null"))?;
    let list = obj.entry("Statement").or_insert_with(|| json!([]));
    if list.is_object() {
        *list = json!([list.take()]);
    }
    list.as_array_mut()
        .ok_or_else(|| SnsError::bad("Policy Error: null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_is_a_string_and_several_a_list() {
        assert_eq!(one_or_many(vec!["a".into()]), json!("a"));
        assert_eq!(one_or_many(vec!["a".into(), "b".into()]), json!(["a", "b"]));
    }

    #[test]
    fn a_single_statement_object_becomes_a_list() {
        let mut p = json!({"Statement": {"Sid": "x"}});
        assert_eq!(statements(&mut p).map(|s| s.len()), Ok(1));
        let mut bad = json!([1]);
        assert!(statements(&mut bad).is_err());
    }
}
