//! The last will: published when a connection ends without a clean DISCONNECT,
//! at once or after its delay (unless the client comes back first).

use crate::convert;
use crate::registry::Registry;
use rmqtt_codec::v5;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{Broker, PublishOptions};

pub(crate) fn publish_will(
    broker: Arc<dyn Broker>,
    registry: Registry,
    vhost: String,
    client_id: String,
    w: v5::LastWill,
    (delay, claim): (u32, u64),
) {
    let p = rmqtt_codec::types::Publish {
        dup: false,
        retain: w.retain,
        qos: w.qos,
        topic: w.topic.clone(),
        packet_id: None,
        payload: w.message.clone(),
        properties: Some(v5::PublishProperties {
            correlation_data: w.correlation_data.clone(),
            message_expiry_interval: w.message_expiry_interval,
            content_type: w.content_type.clone(),
            user_properties: w.user_properties.clone(),
            is_utf8_payload: w.is_utf8_payload.unwrap_or(false),
            response_topic: w.response_topic.clone(),
            ..Default::default()
        }),
    };
    let (vhost2, client_id2) = (vhost.clone(), client_id.clone());
    let send = move |broker: &dyn Broker| {
        let msg = convert::to_message(&p, &p.topic, &client_id);
        if p.retain {
            let value = (!p.payload.is_empty()).then(|| {
                let mut m = msg.clone();
                m.properties.delivery_mode = Some(2);
                m
            });
            let _ = broker.keyed_put(&vhost, crate::RETAINED, &msg.routing_key, value);
        }
        if let Err(e) = broker.publish(&vhost, msg, PublishOptions::default()) {
            tracing::warn!("will of {client_id} not published: {e}");
        }
    };
    if delay == 0 {
        send(&*broker);
        return;
    }
    // The client may already be back (its new connection took the id while this
    // one was closing): then there is no will to wait for.
    let Some((id, cancelled)) = registry.delay_will(&vhost2, &client_id2, claim) else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = cancelled.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {
                registry.will_done(&vhost2, &client_id2, id);
                send(&*broker);
            }
        }
    });
}
