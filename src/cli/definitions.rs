//! `billflow definitions`: the RabbitMQ definitions file of this prefix and shard count.

use crate::config::BrokerSettings;

/// Prints the definitions for `vhost`, by default the AMQP URL's.
pub fn run(vhost: Option<String>, settings: &BrokerSettings) -> anyhow::Result<()> {
    let vhost = match vhost {
        Some(v) => v,
        None => {
            let uri: lapin::uri::AMQPUri = settings
                .amqp_url
                .expose()
                .parse()
                .map_err(|e| anyhow::anyhow!("AMQP_URL is not a valid AMQP URL: {e}"))?;
            uri.vhost
        }
    };
    let doc = settings.topology().definitions(&vhost);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
