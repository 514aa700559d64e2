//! SQS and SNS HTTP APIs (issue 6, 7). Empty until then.
