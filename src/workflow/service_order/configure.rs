//! The Set stages, each one call on the qualified service (one SQ, so one call):
//! `set_configuration`, `set_features`, `set_contacts`, `set_identifier`. A Set call
//! replaces what was set before, so each is repeatable.

use serde_json::{json, Value};

use super::Ctx;
use crate::billing::emersion::wire;
use crate::secret::Secret;
use crate::workflow::StageError;

/// A Set stage's output: the status the platform answered.
fn status(reply: String) -> Result<Value, StageError> {
    Ok(json!({ "status": reply }))
}

pub(super) async fn set_configuration(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let call = wire::SetServiceConfiguration {
        presale_sq_id: cx.sq_id()?,
        values: cx
            .data
            .configuration
            .iter()
            .map(|p| (p.type_id, p.value.clone()))
            .collect(),
    };
    status(cx.client.call(&call).await?)
}

pub(super) async fn set_features(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let call = wire::SetServiceFeatureSetup {
        account_presale_sq_id: cx.sq_id()?,
        features: cx
            .data
            .features
            .iter()
            .filter_map(|f| f.setting())
            .map(|f| wire::FeatureSetup {
                type_id: f.type_id,
                identifier: f.identifier,
                option_type_id: f.option_type_id,
            })
            .collect(),
    };
    status(cx.client.call(&call).await?)
}

pub(super) async fn set_contacts(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let call = wire::SetServiceContacts {
        account_presale_sq_id: cx.sq_id()?,
        contacts: cx
            .data
            .contacts
            .iter()
            .map(|c| wire::Contact {
                type_id: c.type_id,
                title: c.title.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                date_of_birth: c.date_of_birth.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
            })
            .collect(),
    };
    status(cx.client.call(&call).await?)
}

pub(super) async fn set_identifier(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let sq = cx.sq_id()?;
    let Some(id) = &cx.data.identifier else {
        return Err(StageError::permanent(
            "set_identifier without data.identifier",
        ));
    };
    let call = wire::SetServiceIdentifier {
        account_presale_sq_id: sq,
        username: id.username.clone(),
        realm: id.realm.clone(),
        password: Secret::new(id.password.clone()),
    };
    status(cx.client.call(&call).await?)
}
