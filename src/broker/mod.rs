//! RabbitMQ: topology, confirmed publishing and consuming. Knows nothing of billing, and
//! must not import the engine, workflows, contract, store or billing.

mod definitions;
mod publisher;
mod subscription;
mod topology;

pub use publisher::{fnv1a, Outgoing, Publisher};
pub use subscription::Subscription;
pub use topology::{Topology, DEFAULT_SHARDS, DELAY_TIERS, DELIVERY_LIMIT};

use lapin::{Connection, ConnectionProperties};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect { url: String, source: lapin::Error },
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker returned the message as unroutable (exchange {exchange:?}, routing key {routing_key:?}): is the topology declared?")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error("declaring queue {queue:?} failed: {source}; a queue that exists with other arguments (an older billflow, or definitions loaded while BILLFLOW_QUEUE_ARGUMENTS is true) must be deleted or matched")]
    Declare { queue: String, source: lapin::Error },
    #[error("the broker ended the consumer (queue deleted or connection lost)")]
    ConsumerEnded,
    #[error("the broker refused the message (nack) on exchange {exchange:?}, routing key {routing_key:?}")]
    Nacked {
        exchange: String,
        routing_key: String,
    },
}

/// Opens a connection; the URL's password is never put in the error.
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props)
        .await
        .map_err(|source| BrokerError::Connect {
            url: crate::secret::redact_url(url),
            source,
        })
}
