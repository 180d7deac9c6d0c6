//! Publishing commands the way a CRM does: to `<prefix>.commands`, routing key = type,
//! persistent, mandatory and confirmed.

use anyhow::Context;

use crate::broker::{BrokerError, Outgoing, Publisher, Topology};
use crate::config::BrokerSettings;
use crate::contract::command::{Command, CommandError};

/// Reads a command document, giving it a fresh `command_id` if it has none, and validates it.
pub fn prepare(body: &[u8]) -> Result<Command, CommandError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| CommandError::NotJson(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        object
            .entry("command_id")
            .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
    }
    Command::from_value(value)
}

/// Publishes one command and returns once the broker has confirmed it. Declare the
/// topology first, so a command published before any worker ever ran is kept.
pub async fn publish(
    publisher: &Publisher,
    topology: &Topology,
    command: &Command,
) -> Result<(), BrokerError> {
    let body = serde_json::to_vec(command).expect("a command always serializes");
    let mut out = Outgoing::json(
        &topology.commands_exchange(),
        command.body.type_name(),
        body,
    );
    out.message_id = Some(command.command_id.clone());
    out.message_type = Some(command.body.type_name().to_string());
    publisher.publish(out).await
}

/// `billflow publish`: reads a command (a file, or `-` for standard input), validates it,
/// publishes it with a confirm and prints its command_id.
pub async fn run(file: &std::path::Path, settings: &BrokerSettings) -> anyhow::Result<()> {
    let body = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let command =
        prepare(&body).with_context(|| format!("{} is not a valid command", file.display()))?;
    let connection = crate::broker::connect(settings.amqp_url.expose(), "billflow-publish").await?;
    let topology = settings.topology();
    topology
        .declare(&connection.create_channel().await?)
        .await?;
    let publisher = Publisher::open(&connection).await?;
    publish(&publisher, &topology, &command).await?;
    println!("{}", command.command_id);
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_command_id_is_generated() {
        let cmd = prepare(br#"{"type":"advancepay.renew","data":{"service_number":"1","order_type_id":1,"register_id":1,"tender_type_id":1}}"#).unwrap();
        assert_eq!(cmd.command_id.len(), 36);
        let kept = prepare(br#"{"command_id":"x","type":"advancepay.renew","data":{"service_number":"1","order_type_id":1,"register_id":1,"tender_type_id":1}}"#).unwrap();
        assert_eq!(kept.command_id, "x");
        assert!(prepare(b"[]").is_err());
    }
}
