//! The service qualification, one of three kinds: `simple_sq` (PerformSimpleSQ),
//! `phone_sq` (PerformGeneralPhoneSQ), or `find_address` then `nwb_sq`
//! (FindNWBSQAddress, PerformNWBSQ).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{self, Address};
use crate::contract::command::SqRequest;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct Qualified {
    pub account_presale_sq_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AddressFound {
    pub address: Address,
}

pub(super) async fn simple_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let sq = cx
        .client
        .call(&wire::PerformSimpleSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id: cx.data.service_type_id,
        })
        .await?;
    encode(Qualified {
        account_presale_sq_id: sq,
        result: None,
    })
}

pub(super) async fn phone_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let SqRequest::GeneralPhone { phone_number } = &cx.data.sq else {
        return Err(StageError::permanent(
            "phone_sq without a general phone SQ request",
        ));
    };
    let sq = cx
        .client
        .call(&wire::PerformGeneralPhoneSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id: cx.data.service_type_id,
            phone_number: phone_number.clone(),
        })
        .await?;
    encode(Qualified {
        account_presale_sq_id: sq,
        result: None,
    })
}

/// The command's address must match exactly one the platform knows.
pub(super) async fn find_address(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let SqRequest::Nwb { address } = &cx.data.sq else {
        return Err(StageError::permanent(
            "find_address without an NWB SQ request",
        ));
    };
    let mut found = cx
        .client
        .call(&wire::FindNWBSQAddress {
            service_type_id: cx.data.service_type_id,
            address: Address {
                street_number: address.street_number.clone(),
                street_name: address.street_name.clone(),
                street_type: address.street_type.clone(),
                suburb: address.suburb.clone(),
                state: address.state.clone(),
                postcode: address.postcode.clone(),
                location_id: None,
            },
        })
        .await?;
    match found.len() {
        1 => encode(AddressFound {
            address: found.remove(0),
        }),
        0 => Err(StageError::permanent(
            "FindNWBSQAddress found no such address",
        )),
        n => Err(StageError::permanent(format!(
            "FindNWBSQAddress found {n} addresses; give the street name and number to pick one"
        ))),
    }
}

/// PerformNWBSQ on the address found; anything but Qualified fails the order.
pub(super) async fn nwb_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found: AddressFound = cx.output(ServiceOrderStage::FindAddress)?;
    let location_id = found
        .address
        .location_id
        .ok_or_else(|| StageError::permanent("the address found has no LocationID"))?;
    let sq = cx
        .client
        .call(&wire::PerformNWBSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id: cx.data.service_type_id,
            location_id: location_id.clone(),
        })
        .await?;
    if !sq.result.eq_ignore_ascii_case("Qualified") {
        return Err(StageError::permanent(format!(
            "location {location_id} did not qualify: ServiceQualificationResult {}",
            sq.result
        )));
    }
    encode(Qualified {
        account_presale_sq_id: sq.account_presale_sq_id,
        result: Some(sq.result),
    })
}
