//! The 23 SQS actions and their members' shapes, as the Query protocol names them: a
//! static table taken from botocore's model of the days when SQS spoke Query (1.34.22,
//! kept in `tests/query/sqs-2012-11-05.query-model.json`). Only data and a lookup;
//! reading requests and writing replies against it is the parent module's work.

/// How a value travels. Every list and map in SQS is "flattened": its items sit directly
/// under the member's Query name (`AttributeName.1`, `<QueueUrl>` repeated), never
/// under a `member`/`entry` wrapper.
#[derive(Clone, Copy, Debug)]
pub(super) enum Shape {
    /// Text; blobs too, which are base64 text in both protocols.
    Str,
    /// 32-bit in requests (all request integers are); replies also use it for longs.
    Int,
    /// Replies only (`SenderFault`).
    Bool,
    /// Items at `{name}.N`; in XML, one `<name>` per item.
    List(&'static Shape),
    /// Entries at `{name}.N.{key}` and `{name}.N.{value}`; in XML,
    /// `<name><key/><value/></name>` per entry.
    Map {
        key: &'static str,
        value: &'static str,
        of: &'static Shape,
    },
    Struct(&'static [Member]),
}

#[derive(Debug)]
pub(super) struct Member {
    /// The JSON protocol's name.
    pub(super) json: &'static str,
    /// The Query protocol's name: for a list or map, that of one item.
    pub(super) query: &'static str,
    pub(super) shape: Shape,
}

pub(super) struct Action {
    pub(super) name: &'static str,
    pub(super) input: &'static [Member],
    /// `None` for actions whose reply carries only the request id.
    pub(super) output: Option<&'static [Member]>,
}

use Shape::{Bool, Int, List, Str, Struct};

const fn m(json: &'static str, query: &'static str, shape: Shape) -> Member {
    Member { json, query, shape }
}
const fn s(name: &'static str) -> Member {
    m(name, name, Str)
}
const fn int(name: &'static str) -> Member {
    m(name, name, Int)
}

const STRINGS: Shape = List(&Str);
/// QueueAttributeMap, MessageSystemAttributeMap.
const NAME_VALUE: Shape = Shape::Map {
    key: "Name",
    value: "Value",
    of: &Str,
};
const TAGS: Shape = Shape::Map {
    key: "Key",
    value: "Value",
    of: &Str,
};
/// MessageAttributeValue and MessageSystemAttributeValue (same members).
const ATTRIBUTE_VALUE: Shape = Struct(&[
    s("StringValue"),
    s("BinaryValue"),
    m("StringListValues", "StringListValue", STRINGS),
    m("BinaryListValues", "BinaryListValue", STRINGS),
    s("DataType"),
]);
const ATTRIBUTES: Shape = Shape::Map {
    key: "Name",
    value: "Value",
    of: &ATTRIBUTE_VALUE,
};
const QUEUE_URL: Member = s("QueueUrl");
const FAILED: Member = m(
    "Failed",
    "BatchResultErrorEntry",
    List(&Struct(&[
        s("Id"),
        m("SenderFault", "SenderFault", Bool),
        s("Code"),
        s("Message"),
    ])),
);
const IDS: Shape = Struct(&[s("Id")]);

pub(super) static ACTIONS: [Action; 23] = [
    Action {
        name: "AddPermission",
        input: &[
            QUEUE_URL,
            s("Label"),
            m("AWSAccountIds", "AWSAccountId", STRINGS),
            m("Actions", "ActionName", STRINGS),
        ],
        output: None,
    },
    Action {
        name: "CancelMessageMoveTask",
        input: &[s("TaskHandle")],
        output: Some(&[int("ApproximateNumberOfMessagesMoved")]),
    },
    Action {
        name: "ChangeMessageVisibility",
        input: &[QUEUE_URL, s("ReceiptHandle"), int("VisibilityTimeout")],
        output: None,
    },
    Action {
        name: "ChangeMessageVisibilityBatch",
        input: &[
            QUEUE_URL,
            m(
                "Entries",
                "ChangeMessageVisibilityBatchRequestEntry",
                List(&Struct(&[
                    s("Id"),
                    s("ReceiptHandle"),
                    int("VisibilityTimeout"),
                ])),
            ),
        ],
        output: Some(&[
            m(
                "Successful",
                "ChangeMessageVisibilityBatchResultEntry",
                List(&IDS),
            ),
            FAILED,
        ]),
    },
    Action {
        name: "CreateQueue",
        input: &[
            s("QueueName"),
            m("Attributes", "Attribute", NAME_VALUE),
            m("tags", "Tag", TAGS),
        ],
        output: Some(&[QUEUE_URL]),
    },
    Action {
        name: "DeleteMessage",
        input: &[QUEUE_URL, s("ReceiptHandle")],
        output: None,
    },
    Action {
        name: "DeleteMessageBatch",
        input: &[
            QUEUE_URL,
            m(
                "Entries",
                "DeleteMessageBatchRequestEntry",
                List(&Struct(&[s("Id"), s("ReceiptHandle")])),
            ),
        ],
        output: Some(&[
            m("Successful", "DeleteMessageBatchResultEntry", List(&IDS)),
            FAILED,
        ]),
    },
    Action {
        name: "DeleteQueue",
        input: &[QUEUE_URL],
        output: None,
    },
    Action {
        name: "GetQueueAttributes",
        input: &[QUEUE_URL, m("AttributeNames", "AttributeName", STRINGS)],
        output: Some(&[m("Attributes", "Attribute", NAME_VALUE)]),
    },
    Action {
        name: "GetQueueUrl",
        input: &[s("QueueName"), s("QueueOwnerAWSAccountId")],
        output: Some(&[QUEUE_URL]),
    },
    Action {
        name: "ListDeadLetterSourceQueues",
        input: &[QUEUE_URL, s("NextToken"), int("MaxResults")],
        // Lower-case in JSON, as AWS named it.
        output: Some(&[m("queueUrls", "QueueUrl", STRINGS), s("NextToken")]),
    },
    Action {
        name: "ListMessageMoveTasks",
        input: &[s("SourceArn"), int("MaxResults")],
        output: Some(&[m(
            "Results",
            "ListMessageMoveTasksResultEntry",
            List(&Struct(&[
                s("TaskHandle"),
                s("Status"),
                s("SourceArn"),
                s("DestinationArn"),
                int("MaxNumberOfMessagesPerSecond"),
                int("ApproximateNumberOfMessagesMoved"),
                int("ApproximateNumberOfMessagesToMove"),
                s("FailureReason"),
                int("StartedTimestamp"),
            ])),
        )]),
    },
    Action {
        name: "ListQueueTags",
        input: &[QUEUE_URL],
        output: Some(&[m("Tags", "Tag", TAGS)]),
    },
    Action {
        name: "ListQueues",
        input: &[s("QueueNamePrefix"), s("NextToken"), int("MaxResults")],
        output: Some(&[m("QueueUrls", "QueueUrl", STRINGS), s("NextToken")]),
    },
    Action {
        name: "PurgeQueue",
        input: &[QUEUE_URL],
        output: None,
    },
    Action {
        name: "ReceiveMessage",
        input: &[
            QUEUE_URL,
            m("AttributeNames", "AttributeName", STRINGS),
            // AWS's model gives MessageSystemAttributeNames the Query name
            // `AttributeName` too, so on Query both arrive as AttributeNames. This
            // name is ours, for clients that derive it from the JSON name; AWS ignores it.
            m(
                "MessageSystemAttributeNames",
                "MessageSystemAttributeName",
                STRINGS,
            ),
            m("MessageAttributeNames", "MessageAttributeName", STRINGS),
            int("MaxNumberOfMessages"),
            int("VisibilityTimeout"),
            int("WaitTimeSeconds"),
            s("ReceiveRequestAttemptId"),
        ],
        output: Some(&[m(
            "Messages",
            "Message",
            List(&Struct(&[
                s("MessageId"),
                s("ReceiptHandle"),
                s("MD5OfBody"),
                s("Body"),
                m("Attributes", "Attribute", NAME_VALUE),
                s("MD5OfMessageAttributes"),
                m("MessageAttributes", "MessageAttribute", ATTRIBUTES),
            ])),
        )]),
    },
    Action {
        name: "RemovePermission",
        input: &[QUEUE_URL, s("Label")],
        output: None,
    },
    Action {
        name: "SendMessage",
        input: &[
            QUEUE_URL,
            s("MessageBody"),
            int("DelaySeconds"),
            m("MessageAttributes", "MessageAttribute", ATTRIBUTES),
            m(
                "MessageSystemAttributes",
                "MessageSystemAttribute",
                ATTRIBUTES,
            ),
            s("MessageDeduplicationId"),
            s("MessageGroupId"),
        ],
        output: Some(&[
            s("MD5OfMessageBody"),
            s("MD5OfMessageAttributes"),
            s("MD5OfMessageSystemAttributes"),
            s("MessageId"),
            s("SequenceNumber"),
        ]),
    },
    Action {
        name: "SendMessageBatch",
        input: &[
            QUEUE_URL,
            m(
                "Entries",
                "SendMessageBatchRequestEntry",
                List(&Struct(&[
                    s("Id"),
                    s("MessageBody"),
                    int("DelaySeconds"),
                    m("MessageAttributes", "MessageAttribute", ATTRIBUTES),
                    m(
                        "MessageSystemAttributes",
                        "MessageSystemAttribute",
                        ATTRIBUTES,
                    ),
                    s("MessageDeduplicationId"),
                    s("MessageGroupId"),
                ])),
            ),
        ],
        output: Some(&[
            m(
                "Successful",
                "SendMessageBatchResultEntry",
                List(&Struct(&[
                    s("Id"),
                    s("MessageId"),
                    s("MD5OfMessageBody"),
                    s("MD5OfMessageAttributes"),
                    s("MD5OfMessageSystemAttributes"),
                    s("SequenceNumber"),
                ])),
            ),
            FAILED,
        ]),
    },
    Action {
        name: "SetQueueAttributes",
        input: &[QUEUE_URL, m("Attributes", "Attribute", NAME_VALUE)],
        output: None,
    },
    Action {
        name: "StartMessageMoveTask",
        input: &[
            s("SourceArn"),
            s("DestinationArn"),
            int("MaxNumberOfMessagesPerSecond"),
        ],
        output: Some(&[s("TaskHandle")]),
    },
    Action {
        name: "TagQueue",
        input: &[QUEUE_URL, m("Tags", "Tag", TAGS)],
        output: None,
    },
    Action {
        name: "UntagQueue",
        input: &[QUEUE_URL, m("TagKeys", "TagKey", STRINGS)],
        output: None,
    },
];

pub(super) fn find(action: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == action)
}
