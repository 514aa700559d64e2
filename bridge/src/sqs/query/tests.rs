use super::actions::ACTIONS;
use super::*;
use proptest::prelude::*;
use quick_xml::events::Event;
use serde_json::json;
use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/query")
        .join(sub)
}

/// `(stem, contents)` of the files in `tests/query/{sub}` ending in `ext`.
fn files(sub: &str, ext: &str) -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            (stem, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn action_of_stem(stem: &str) -> &str {
    stem.split("--").next().unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn params(action: &str, list: &[(&str, &str)]) -> Result<Value, SqsError> {
    params_to_json(action, &pairs(list))
}

// ---- Known answers made by botocore ----

#[test]
fn every_botocore_query_body_becomes_its_json_body() {
    let forms = files("in", "form");
    for action in &ACTIONS {
        let full = format!("{}--all-members", action.name);
        assert!(
            forms.iter().any(|(stem, _)| *stem == full),
            "no {full}.form"
        );
    }
    for (stem, form) in &forms {
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(dir("in").join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        let (action, got) = parse_request(form.as_bytes()).unwrap();
        assert_eq!(action, action_of_stem(stem), "{stem}");
        assert_eq!(got, want, "{stem}");
    }
}

/// Turns a Query reply back into JSON with the same tables, the way an SDK would
/// (through an XML 1.0 parser, which is what catches a CR written as itself).
fn xml_to_json(action: &str, xml: &str) -> (Value, String) {
    let root = Node::parse(xml);
    assert_eq!(root.name, format!("{action}Response"));
    let request_id = root
        .child("ResponseMetadata")
        .unwrap()
        .child("RequestId")
        .unwrap()
        .text
        .clone();
    let spec = find(action).unwrap();
    let mut out = Map::new();
    if let Some(members) = spec.output {
        let result = root.child(&format!("{action}Result")).unwrap();
        read_xml_members(result, members, &mut out);
    } else {
        assert!(root.child(&format!("{action}Result")).is_none());
    }
    (Value::Object(out), request_id)
}

fn read_xml_members(node: &Node, members: &[Member], out: &mut Map<String, Value>) {
    for member in members {
        let found: Vec<&Node> = node
            .children
            .iter()
            .filter(|c| c.name == member.query)
            .collect();
        if found.is_empty() {
            continue;
        }
        let v = match member.shape {
            List(item) => Value::Array(found.iter().map(|n| xml_value(n, *item)).collect()),
            Shape::Map { key, value, of } => Value::Object(
                found
                    .iter()
                    .map(|n| {
                        (
                            n.child(key).unwrap().text.clone(),
                            xml_value(n.child(value).unwrap(), *of),
                        )
                    })
                    .collect(),
            ),
            shape => xml_value(found[0], shape),
        };
        out.insert(member.json.to_owned(), v);
    }
}

fn xml_value(node: &Node, shape: Shape) -> Value {
    match shape {
        Str => Value::from(node.text.clone()),
        Int => Value::from(node.text.parse::<i64>().unwrap()),
        Bool => Value::from(node.text == "true"),
        Struct(members) => {
            let mut out = Map::new();
            read_xml_members(node, members, &mut out);
            Value::Object(out)
        }
        List(_) | Shape::Map { .. } => unreachable!("lists are members"),
    }
}

/// What survives the trip through XML: what the tables name, without nulls or
/// empty lists and maps (Query cannot tell those from absent ones).
fn survives(members: &[Member], v: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for m in members {
        if let Some(x) = v.get(m.json).and_then(|x| survives_as(m.shape, x)) {
            out.insert(m.json.to_owned(), x);
        }
    }
    Value::Object(out)
}

fn survives_as(shape: Shape, v: &Value) -> Option<Value> {
    match shape {
        Str | Int | Bool => (v.is_string() || v.is_number() || v.is_boolean()).then(|| v.clone()),
        List(item) => {
            let items: Vec<_> = v
                .as_array()?
                .iter()
                .filter_map(|x| survives_as(*item, x))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Shape::Map { of, .. } => {
            let map: Map<_, _> = v
                .as_object()?
                .iter()
                .filter_map(|(k, x)| Some((k.clone(), survives_as(*of, x)?)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Struct(members) => Some(survives(members, v.as_object()?)),
    }
}

#[test]
fn every_reply_reads_back_as_the_json_it_came_from() {
    let replies = files("out", "json");
    for action in &ACTIONS {
        let full = format!("{}--all-members", action.name);
        assert!(
            replies.iter().any(|(stem, _)| *stem == full),
            "no {full}.json"
        );
    }
    for (stem, text) in &replies {
        let action = action_of_stem(stem);
        let output: Value = serde_json::from_str(text).unwrap();
        let id = format!("req-{stem}");
        let xml = response_xml(action, &output, &id);
        let (back, back_id) = xml_to_json(action, &xml);
        assert_eq!(back_id, id);
        let members = find(action).unwrap().output.unwrap_or(&[]);
        assert_eq!(
            back,
            survives(members, output.as_object().unwrap()),
            "{stem}: {xml}"
        );
    }
}

#[test]
fn every_reply_is_the_xml_botocore_checked() {
    for (stem, text) in files("out", "json") {
        let output: Value = serde_json::from_str(&text).unwrap();
        let xml = response_xml(action_of_stem(&stem), &output, &format!("req-{stem}"));
        let checked = std::fs::read_to_string(dir("out").join(format!("{stem}.xml")))
            .unwrap_or_else(|e| {
                panic!("out/{stem}.xml: {e}; run botocore_roundtrip.py check --bless")
            });
        assert_eq!(
            xml, checked,
            "{stem}: changed since botocore_roundtrip.py checked it"
        );
    }
}

/// Writes every rendered reply (and a few errors) to target/query-samples for
/// `botocore_roundtrip.py check`.
#[test]
#[ignore = "writes files for tests/query/botocore_roundtrip.py"]
fn write_query_samples() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/query-samples");
    std::fs::create_dir_all(&out).unwrap();
    for (stem, text) in files("out", "json") {
        let output: Value = serde_json::from_str(&text).unwrap();
        let id = format!("req-{stem}");
        std::fs::write(
            out.join(format!("{stem}.xml")),
            response_xml(action_of_stem(&stem), &output, &id),
        )
        .unwrap();
        let sample = json!({"output": output, "RequestId": id});
        std::fs::write(out.join(format!("{stem}.json")), sample.to_string()).unwrap();
    }
    let errors = [
        SqsError::queue_does_not_exist("The specified queue does not exist."),
        SqsError::invalid_action("The action Foo<&> is not valid for this endpoint."),
        SqsError::internal("Bad\r\nthings ]]> happened"),
        action_of(&[]).unwrap_err(),
    ];
    for (i, err) in errors.iter().enumerate() {
        let id = format!("req-error-{i}");
        std::fs::write(out.join(format!("error--{i}.xml")), error_xml(err, &id)).unwrap();
        let sample = json!({
            "Error": {
                "Type": if err.sender { "Sender" } else { "Receiver" },
                "Code": err.query_code,
                "Message": query_message(err),
                "Detail": null,
            },
            "RequestId": id,
        });
        std::fs::write(out.join(format!("error--{i}.json")), sample.to_string()).unwrap();
    }
    println!("wrote {}", out.display());
}

// ---- Known answers captured from boto3 (a copy of shared/vectors/aws in tests/vectors/aws) ----

/// `(request body, reply body)` of a capture.
fn capture(name: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/aws")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (request, response) = text.split_once("=== RESPONSE ===").unwrap();
    let body = |part: &str| {
        let part = part.replace("\r\n", "\n");
        part.split_once("\n\n").unwrap().1.trim().to_owned()
    };
    (body(request), body(response))
}

fn request_id(xml: &str) -> &str {
    xml.split_once("<RequestId>")
        .unwrap()
        .1
        .split_once("</RequestId>")
        .unwrap()
        .0
}

#[test]
fn captured_send_message_matches_the_json_protocol_capture() {
    let (query_body, query_reply) = capture("sqs_query_send.txt");
    let (json_body, _) = capture("sqs_json_send.txt");
    let (action, input) = parse_request(query_body.as_bytes()).unwrap();
    assert_eq!(action, "SendMessage");
    assert_eq!(input, serde_json::from_str::<Value>(&json_body).unwrap());

    let output = json!({
        "MD5OfMessageBody": "5d41402abc4b2a76b9719d911017c592",
        "MD5OfMessageAttributes": "20ca9041878c8c65d5a4bf6eaf446c21",
        "MessageId": "3b5bfbb6-3d17-4327-b8ef-3041c4d10bb7",
    });
    assert_eq!(
        response_xml("SendMessage", &output, request_id(&query_reply)),
        query_reply
    );
}

#[test]
fn captured_receive_message_renders_byte_for_byte() {
    let (body, reply) = capture("sqs_query_receive.txt");
    let (action, input) = parse_request(body.as_bytes()).unwrap();
    assert_eq!(action, "ReceiveMessage");
    assert_eq!(
        input,
        json!({
            "QueueUrl": "http://127.0.0.1:5001/123456789012/orders",
            "AttributeNames": ["ApproximateReceiveCount"],
            "MessageAttributeNames": ["All"],
        })
    );
    let output: Value = serde_json::from_str(
        &std::fs::read_to_string(dir("out").join("ReceiveMessage--capture.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        response_xml("ReceiveMessage", &output, request_id(&reply)),
        reply
    );
}

#[test]
fn captured_error_has_the_query_code_and_wording() {
    let (body, reply) = capture("sqs_query_error.txt");
    let (json_body, _) = capture("sqs_json_error.txt");
    let (action, input) = parse_request(body.as_bytes()).unwrap();
    assert_eq!(action, "GetQueueUrl");
    assert_eq!(input, serde_json::from_str::<Value>(&json_body).unwrap());

    // The JSON protocol's wording, as the action writes it.
    let err = SqsError::queue_does_not_exist("The specified queue does not exist.");
    let id = request_id(&reply);
    let xml = error_xml(&err, id);
    assert_eq!(
        xml,
        format!(
            "<ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><Error>\
             <Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>\
             <Message>The specified queue does not exist for this wsdl version.</Message>\
             <Detail/></Error><RequestId>{id}</RequestId></ErrorResponse>"
        )
    );
    // The emulator adds a lower-case <message> and omits <Detail/>; the rest agrees.
    for part in [
        "<Type>Sender</Type>",
        "<Code>AWS.SimpleQueueService.NonExistentQueue</Code>",
        "<Message>The specified queue does not exist for this wsdl version.</Message>",
    ] {
        assert!(reply.contains(part) && xml.contains(part), "{part}");
    }
}

// ---- Requests ----

#[test]
fn lists_follow_n_numerically_with_gaps() {
    let v = params(
        "GetQueueAttributes",
        &[
            ("AttributeName.10", "ten"),
            ("AttributeName.2", "two"),
            ("AttributeName.1", "one"),
            ("AttributeName.7", "seven"),
        ],
    )
    .unwrap();
    assert_eq!(v, json!({"AttributeNames": ["one", "two", "seven", "ten"]}));
}

#[test]
fn odd_indices_and_unknown_parameters_are_ignored() {
    let v = params(
        "UntagQueue",
        &[
            ("Action", "UntagQueue"),
            ("Version", "2012-11-05"),
            ("QueueUrl", "q"),
            ("TagKey.0", "zero"),
            ("TagKey.01", "leading zero"),
            ("TagKey.+1", "sign"),
            ("TagKey.99999999999", "too big"),
            ("TagKey", "no index"),
            ("TagKey.1", "a"),
            ("TagKey.1.x", "deeper"),
            ("TagKeys.1", "json name"),
            ("Signature", "x"),
            ("X-Amz-Date", "x"),
        ],
    )
    .unwrap();
    assert_eq!(v, json!({"QueueUrl": "q", "TagKeys": ["a"]}));
}

#[test]
fn the_first_of_repeated_names_counts() {
    let v = params(
        "DeleteQueue",
        &[("QueueUrl", "first"), ("QueueUrl", "second")],
    )
    .unwrap();
    assert_eq!(v, json!({"QueueUrl": "first"}));
}

#[test]
fn maps_and_nested_entries() {
    let v = params(
        "SendMessageBatch",
        &[
            ("QueueUrl", "q"),
            ("SendMessageBatchRequestEntry.2.Id", "b"),
            ("SendMessageBatchRequestEntry.2.MessageBody", "B"),
            ("SendMessageBatchRequestEntry.10.Id", "c"),
            ("SendMessageBatchRequestEntry.1.Id", "a"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "A"),
            ("SendMessageBatchRequestEntry.1.DelaySeconds", "5"),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.11.Name",
                "k",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.11.Value.DataType",
                "Binary",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.11.Value.BinaryValue",
                "AAE=",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageSystemAttribute.1.Name",
                "AWSTraceHeader",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageSystemAttribute.1.Value.DataType",
                "String",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageSystemAttribute.1.Value.StringValue",
                "Root=1",
            ),
            (
                "SendMessageBatchRequestEntry.3.Bogus",
                "entry with nothing known",
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"QueueUrl": "q", "Entries": [
            {"Id": "a", "MessageBody": "A", "DelaySeconds": 5,
             "MessageAttributes": {"k": {"DataType": "Binary", "BinaryValue": "AAE="}},
             "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}}},
            {"Id": "b", "MessageBody": "B"},
            {"Id": "c"},
        ]})
    );
}

#[test]
fn queue_attributes_and_tags() {
    let v = params(
        "CreateQueue",
        &[
            ("QueueName", "q.fifo"),
            ("Attribute.1.Name", "FifoQueue"),
            ("Attribute.1.Value", "true"),
            ("Attribute.2.Name", "DelaySeconds"),
            ("Attribute.2.Value", ""),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "a"),
            ("Tag.2.Key", "team"),
            ("Tag.2.Value", "b"),
        ],
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"QueueName": "q.fifo", "Attributes": {"FifoQueue": "true", "DelaySeconds": ""},
               "tags": {"team": "b"}})
    );
    let v = params(
        "TagQueue",
        &[("QueueUrl", "q"), ("Tag.1.Key", "k"), ("Tag.1.Value", "v")],
    )
    .unwrap();
    assert_eq!(v, json!({"QueueUrl": "q", "Tags": {"k": "v"}}));
}

#[test]
fn map_entries_need_a_name_and_a_value() {
    let err = params("SetQueueAttributes", &[("Attribute.1.Value", "30")]).unwrap_err();
    assert_eq!(err.code, "MissingParameter");
    assert_eq!(
        err.message,
        "The request must contain the parameter Attribute.1.Name."
    );
    let err = params(
        "SetQueueAttributes",
        &[("Attribute.3.Name", "VisibilityTimeout")],
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "The request must contain the parameter Attribute.3.Value."
    );
    // A message attribute without a value is the action's to judge, as on JSON.
    let v = params("SendMessage", &[("MessageAttribute.1.Name", "color")]).unwrap();
    assert_eq!(v, json!({"MessageAttributes": {"color": {}}}));
}

#[test]
fn integers_are_numbers_and_anything_else_is_refused() {
    let v = params(
        "ReceiveMessage",
        &[
            ("MaxNumberOfMessages", "10"),
            ("VisibilityTimeout", "-1"),
            ("WaitTimeSeconds", "+20"),
            ("MessageSystemAttributeName.1", "All"),
        ],
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"MaxNumberOfMessages": 10, "VisibilityTimeout": -1, "WaitTimeSeconds": 20,
               "MessageSystemAttributeNames": ["All"]})
    );
    for bad in ["", "ten", "1.5", " 1", "2147483648", "1e3"] {
        let err = params("ReceiveMessage", &[("WaitTimeSeconds", bad)]).unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue");
        assert_eq!(
            err.message,
            format!(
                "Value {bad} for parameter WaitTimeSeconds is invalid. Reason: Must be an integer."
            )
        );
    }
    let err = params(
        "ChangeMessageVisibilityBatch",
        &[(
            "ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout",
            "x",
        )],
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout")
    );
}

#[test]
fn action_missing_or_unknown() {
    for body in ["", "Version=2012-11-05", "Action=&QueueUrl=q"] {
        let err = parse_request(body.as_bytes()).unwrap_err();
        assert_eq!(
            (err.code, err.query_code, err.status),
            ("MissingAction", "MissingAction", 400)
        );
        assert!(err.sender);
    }
    let err = parse_request(b"Action=sendMessage&QueueUrl=q").unwrap_err();
    assert_eq!(err.query_code, "InvalidAction");
    assert_eq!(
        err.message,
        "The action sendMessage is not valid for this endpoint."
    );
    assert!(err.sender);
}

#[test]
fn form_decoding() {
    let got = decode_form(b"a=1+2%2B3&&b&=x&c=%zz%4&d=%C3%A9%F0%9F%A6%80&e==&a=dup").unwrap();
    assert_eq!(
        got,
        pairs(&[
            ("a", "1 2+3"),
            ("b", ""),
            ("", "x"),
            ("c", "%zz%4"),
            ("d", "é🦀"),
            ("e", "="),
            ("a", "dup")
        ])
    );
    let err = decode_form(b"Action=SendMessage&MessageBody=%FF").unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue");
    assert!(err.message.contains("MessageBody"), "{}", err.message);
    assert!(decode_form(b"%C3=1").is_err());
}

// ---- Replies ----

#[test]
fn actions_without_output_reply_with_metadata_only() {
    for action in ACTIONS.iter().filter(|a| a.output.is_none()) {
        assert_eq!(
            response_xml(action.name, &json!({"Ignored": 1}), "r1"),
            format!(
                "<{0}Response xmlns=\"{XMLNS}\"><ResponseMetadata><RequestId>r1</RequestId>\
                 </ResponseMetadata></{0}Response>",
                action.name
            )
        );
    }
}

#[test]
fn empty_results_are_self_closing() {
    for output in [
        json!({}),
        json!({"Messages": []}),
        json!(null),
        json!({"Messages": null}),
    ] {
        assert_eq!(
            response_xml("ReceiveMessage", &output, "r"),
            format!(
                "<ReceiveMessageResponse xmlns=\"{XMLNS}\"><ReceiveMessageResult/>\
                 <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ReceiveMessageResponse>"
            )
        );
    }
}

#[test]
fn flattened_lists_and_maps() {
    let xml = response_xml(
        "ListQueues",
        &json!({"QueueUrls": ["a", "b"], "NextToken": "t"}),
        "r",
    );
    assert!(xml.contains("<ListQueuesResult><QueueUrl>a</QueueUrl><QueueUrl>b</QueueUrl><NextToken>t</NextToken></ListQueuesResult>"));
    let xml = response_xml(
        "ListDeadLetterSourceQueues",
        &json!({"queueUrls": ["a"]}),
        "r",
    );
    assert!(xml.contains("<ListDeadLetterSourceQueuesResult><QueueUrl>a</QueueUrl></ListDeadLetterSourceQueuesResult>"));
    let xml = response_xml(
        "GetQueueAttributes",
        &json!({"Attributes": {"DelaySeconds": "0"}}),
        "r",
    );
    assert!(xml.contains("<GetQueueAttributesResult><Attribute><Name>DelaySeconds</Name><Value>0</Value></Attribute></GetQueueAttributesResult>"));
    let xml = response_xml("ListQueueTags", &json!({"Tags": {"k": "v"}}), "r");
    assert!(xml.contains(
        "<ListQueueTagsResult><Tag><Key>k</Key><Value>v</Value></Tag></ListQueueTagsResult>"
    ));
    let xml = response_xml(
        "DeleteMessageBatch",
        &json!({"Successful": [{"Id": "a"}], "Failed": [{"Id": "b", "SenderFault": true, "Code": "ReceiptHandleIsInvalid", "Message": "m"}]}),
        "r",
    );
    assert!(xml.contains(
        "<DeleteMessageBatchResult><DeleteMessageBatchResultEntry><Id>a</Id></DeleteMessageBatchResultEntry>\
         <BatchResultErrorEntry><Id>b</Id><SenderFault>true</SenderFault><Code>ReceiptHandleIsInvalid</Code>\
         <Message>m</Message></BatchResultErrorEntry></DeleteMessageBatchResult>"
    ));
    let xml = response_xml(
        "ListMessageMoveTasks",
        &json!({"Results": [{"Status": "RUNNING", "ApproximateNumberOfMessagesMoved": 5_000_000_000_i64}]}),
        "r",
    );
    assert!(xml.contains(
        "<ListMessageMoveTasksResult><ListMessageMoveTasksResultEntry><Status>RUNNING</Status>\
         <ApproximateNumberOfMessagesMoved>5000000000</ApproximateNumberOfMessagesMoved>\
         </ListMessageMoveTasksResultEntry></ListMessageMoveTasksResult>"
    ));
}

#[test]
fn text_is_escaped_so_parsers_give_it_back() {
    let body = "a<b>&c]]>d\r\ne\rf\tg\"h'i\u{1}j\u{FFFE}k🦀";
    let xml = response_xml(
        "ReceiveMessage",
        &json!({"Messages": [{"Body": body}]}),
        "r<&>",
    );
    assert!(xml.contains(
        "<Body>a&lt;b&gt;&amp;c]]&gt;d&#xD;\ne&#xD;f\tg\"h'i\u{FFFD}j\u{FFFD}k🦀</Body>"
    ));
    assert!(xml.contains("<RequestId>r&lt;&amp;&gt;</RequestId>"));
    let (back, id) = xml_to_json("ReceiveMessage", &xml);
    assert_eq!(
        back["Messages"][0]["Body"],
        "a<b>&c]]>d\r\ne\rf\tg\"h'i\u{FFFD}j\u{FFFD}k🦀"
    );
    assert_eq!(id, "r<&>");
}

#[test]
fn unknown_actions_still_give_well_formed_xml() {
    let xml = response_xml("No<Such>Action", &json!({"x": 1}), "r");
    assert_eq!(Node::parse(&xml).name, "NoSuchActionResponse");
}

#[test]
fn error_types_and_escaping() {
    let err = SqsError::internal("x < y & \r");
    assert_eq!(
        error_xml(&err, "id"),
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Receiver</Type><Code>InternalError</Code>\
             <Message>x &lt; y &amp; &#xD;</Message><Detail/></Error><RequestId>id</RequestId></ErrorResponse>"
        )
    );
    // Only the stock JSON wording is replaced.
    let err = SqsError::queue_does_not_exist("Queue q is gone.");
    assert!(error_xml(&err, "id").contains("<Message>Queue q is gone.</Message>"));
}

// ---- No panics ----

/// Parameter names built from the pieces real names are made of, so that random
/// input reaches deep into the tables.
fn param_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("SendMessageBatchRequestEntry"),
        Just("MessageAttribute"),
        Just("Value"),
        Just("Name"),
        Just("Attribute"),
        Just("Tag"),
        Just("Key"),
        Just("AttributeName"),
        Just("StringListValue"),
        Just("DataType"),
        Just("StringValue"),
        Just("BinaryValue"),
        Just("DelaySeconds"),
        Just("Id"),
        Just("QueueUrl"),
        Just("MaxNumberOfMessages"),
        Just("1"),
        Just("2"),
        Just("10"),
        Just("0"),
        Just(""),
        Just("x"),
    ];
    prop_oneof![
        prop::collection::vec(piece, 1..7).prop_map(|p| p.join(".")),
        ".{0,20}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("Messages".to_owned()),
        Just("Body".to_owned()),
        Just("Attributes".to_owned()),
        Just("MessageAttributes".to_owned()),
        Just("StringListValues".to_owned()),
        Just("Successful".to_owned()),
        Just("Failed".to_owned()),
        Just("SenderFault".to_owned()),
        Just("Results".to_owned()),
        Just("Tags".to_owned()),
        Just("QueueUrls".to_owned()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn action_name() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..ACTIONS.len()).prop_map(|i| ACTIONS[i].name.to_owned()),
        ".{0,12}",
    ]
}

proptest! {
    #[test]
    fn random_pairs_never_panic(
        action in action_name(),
        list in prop::collection::vec((param_name(), "(?s).{0,6}"), 0..40),
    ) {
        let _ = params_to_json(&action, &list);
    }

    #[test]
    fn random_bytes_never_panic(form in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_request(&form);
    }

    #[test]
    fn decoding_inverts_form_urlencoded(list in prop::collection::vec(("(?s).{0,10}", "(?s).{0,10}"), 0..8)) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&list).finish();
        let got = decode_form(body.as_bytes()).unwrap();
        // An empty pair encodes as "=", which decodes back; nothing else is lost.
        prop_assert_eq!(got, list);
    }

    #[test]
    fn random_output_gives_well_formed_xml(action in action_name(), output in json_value(), id in ".{0,10}") {
        let xml = response_xml(&action, &output, &id);
        let root = Node::parse(&xml);
        prop_assert!(root.name.ends_with("Response"));
    }

    #[test]
    fn any_body_text_survives_xml(body in any::<String>()) {
        let xml = response_xml("ReceiveMessage", &json!({"Messages": [{"Body": body}]}), "r");
        let (back, _) = xml_to_json("ReceiveMessage", &xml);
        let xml_safe: String = body
            .chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => c,
                _ => '\u{FFFD}',
            })
            .collect();
        prop_assert_eq!(&back["Messages"][0]["Body"], &Value::from(xml_safe));
    }
}

// ---- A small XML 1.0 reader for the tests ----

#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Panics unless `xml` is one well-formed element; text is read the way an XML
    /// 1.0 parser reads it (CR and CR LF become LF).
    fn parse(xml: &str) -> Node {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut stack = vec![Node::default()];
        loop {
            let event = reader.read_event().unwrap_or_else(|e| panic!("{e}: {xml}"));
            match event {
                Event::Start(e) => stack.push(Node {
                    name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
                    ..Node::default()
                }),
                Event::Empty(e) => stack.last_mut().unwrap().children.push(Node {
                    name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
                    ..Node::default()
                }),
                Event::End(_) => {
                    let done = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(done);
                }
                Event::Text(t) => {
                    let text = t.xml10_content().unwrap();
                    for c in text.chars() {
                        assert!(
                            matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..),
                            "not an XML 1.0 character: {c:?} in {xml}"
                        );
                    }
                    stack.last_mut().unwrap().text.push_str(&text);
                }
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref().unwrap() {
                        Some(c) => c,
                        None => match r.decode().unwrap().as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => panic!("unknown entity {other} in {xml}"),
                        },
                    };
                    stack.last_mut().unwrap().text.push(c);
                }
                Event::Eof => break,
                other => panic!("unexpected {other:?} in {xml}"),
            }
        }
        let mut top = stack.pop().unwrap();
        assert!(
            stack.is_empty() && top.children.len() == 1,
            "not one root: {xml}"
        );
        top.children.pop().unwrap()
    }
}
