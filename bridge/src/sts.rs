//! The one STS action SDK-based tools call before anything else to learn the
//! account: `GetCallerIdentity` (`aws sts get-caller-identity` is the sanity check
//! people type). It answers from the broker's user table, on the SQS/SNS port.

use crate::awsquery::push_text;
use switchboard_api::User;

pub const VERSION: &str = "2011-06-15";
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The reply: the signer as an IAM user of the configured account (the account's
/// root when requests are not signed, `auth = "none"`).
pub fn caller_identity(user: Option<&User>, account: &str, request_id: &str) -> String {
    let (arn, user_id) = match user {
        Some(u) => (
            format!("arn:aws:iam::{account}:user/{}", u.name),
            u.name.clone(),
        ),
        None => (format!("arn:aws:iam::{account}:root"), account.to_string()),
    };
    let mut x = format!(
        "<?xml version=\"1.0\"?><GetCallerIdentityResponse xmlns=\"{XMLNS}\"><GetCallerIdentityResult><Arn>"
    );
    push_text(&mut x, &arn);
    x.push_str("</Arn><UserId>");
    push_text(&mut x, &user_id);
    x.push_str("</UserId><Account>");
    push_text(&mut x, account);
    x.push_str("</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>");
    push_text(&mut x, request_id);
    x.push_str("</RequestId></ResponseMetadata></GetCallerIdentityResponse>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_signer_in_the_account() {
        let u = User {
            name: "alice".into(),
            tags: vec![],
        };
        let x = caller_identity(Some(&u), "000000000000", "r-1");
        assert!(x.contains("<Arn>arn:aws:iam::000000000000:user/alice</Arn>"));
        assert!(x.contains("<Account>000000000000</Account>"));
        assert!(x.contains("<RequestId>r-1</RequestId>"));
        let x = caller_identity(None, "000000000000", "r-2");
        assert!(x.contains("<Arn>arn:aws:iam::000000000000:root</Arn>"));
    }
}
