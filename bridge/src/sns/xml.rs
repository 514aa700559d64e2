//! SNS replies: `<XResponse><XResult>…</XResult><ResponseMetadata>…` and
//! `<ErrorResponse>`, in SNS's namespace. Actions write their Result's inside with
//! [`Out`]; the frame around it is the same for all of them.

use super::error::SnsError;
use crate::awsquery::push_text;

pub const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// The inside of a `<XResult>` element.
#[derive(Default)]
pub struct Out(String);

impl Out {
    /// `<name>text</name>`.
    pub fn el(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        push_text(&mut self.0, text);
        self.close(name)
    }
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self
    }
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }
    /// `<name>…</name>` around what `inner` holds (list members, say).
    pub fn wrap(&mut self, name: &str, inner: &Out) -> &mut Self {
        self.open(name);
        self.0.push_str(&inner.0);
        self.close(name)
    }
    /// `<name><entry><key>k</key><value>v</value></entry>…</name>`, SNS's map shape.
    pub fn entries<'a>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.open(name);
        for (k, v) in items {
            self.open("entry")
                .el("key", k)
                .el("value", v)
                .close("entry");
        }
        self.close(name)
    }
}

/// The reply to a successful action; `result` is `None` for actions whose reply
/// carries only the request id (DeleteTopic, Unsubscribe…).
pub fn response(action: &str, result: Option<Out>, request_id: &str) -> String {
    let mut x = String::with_capacity(256);
    x.push('<');
    x.push_str(action);
    x.push_str("Response xmlns=\"");
    x.push_str(XMLNS);
    x.push_str("\">");
    if let Some(Out(inner)) = result {
        x.push('<');
        x.push_str(action);
        x.push_str("Result>");
        x.push_str(&inner);
        x.push_str("</");
        x.push_str(action);
        x.push_str("Result>");
    }
    x.push_str("<ResponseMetadata><RequestId>");
    push_text(&mut x, request_id);
    x.push_str("</RequestId></ResponseMetadata></");
    x.push_str(action);
    x.push_str("Response>");
    x
}

/// The error reply, as AWS sends it (no `<Detail/>`, unlike SQS).
pub fn error(e: &SnsError, request_id: &str) -> String {
    let mut x = String::with_capacity(256);
    x.push_str("<ErrorResponse xmlns=\"");
    x.push_str(XMLNS);
    x.push_str("\"><Error><Type>");
    x.push_str(if e.sender() { "Sender" } else { "Receiver" });
    x.push_str("</Type><Code>");
    push_text(&mut x, e.code);
    x.push_str("</Code><Message>");
    push_text(&mut x, &e.message);
    x.push_str("</Message></Error><RequestId>");
    push_text(&mut x, request_id);
    x.push_str("</RequestId></ErrorResponse>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of the reply in a captured exchange (after the blank line that ends
    /// the response's headers).
    fn reply_body(capture: &str, n: usize) -> String {
        let reply = capture.split("=== RESPONSE ===").nth(n).unwrap_or_default();
        reply
            .split("\n\n")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    #[test]
    fn publish_reply_matches_the_capture() {
        let capture = include_str!("../../tests/vectors/aws/sns_query_publish.txt");
        let mut out = Out::default();
        out.el("MessageId", "29712f5c-765f-4d39-a434-2bdd8982168d");
        let got = response(
            "Publish",
            Some(out),
            "PXcpwRaNHXPFP23aWPcx3l3wwykd1cPdzrZ2MhTp60W6BuuFP6uu",
        );
        assert_eq!(got, reply_body(capture, 1));
    }

    #[test]
    fn error_reply_has_the_captured_shape() {
        let capture = include_str!("../../tests/vectors/aws/sns_query_error.txt");
        let e = SnsError::not_found("Endpoint does not exist");
        let got = error(&e, "VEzCyPHgoTx4koVXuOnKt9EclFMvTVRVAaVZ5bBhhgZ9au0pvz37");
        // The emulator repeats the message in a lower-case `<message>`; AWS does not.
        let want = reply_body(capture, 1).replace("<message>Endpoint does not exist</message>", "");
        assert_eq!(got, want);
    }

    #[test]
    fn text_is_escaped_and_maps_use_entry() {
        let mut out = Out::default();
        out.entries("Attributes", [("DisplayName", "a<b&c")]);
        let got = response("GetTopicAttributes", Some(out), "r");
        assert!(got.contains(
            "<Attributes><entry><key>DisplayName</key><value>a&lt;b&amp;c</value></entry></Attributes>"
        ));
        assert_eq!(
            response("DeleteTopic", None, "r"),
            format!(
                "<DeleteTopicResponse xmlns=\"{XMLNS}\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteTopicResponse>"
            )
        );
    }
}
