//! The service qualification, one of three kinds: `simple_sq` (PerformSimpleSQ),
//! `phone_sq` (PerformGeneralPhoneSQ), or `nwb_sq` (PerformNWBSQ) on an FNN or on the
//! location `find_address` (FindNWBSQAddress) finds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{self, Address, NwbIdentifier, TransferType};
use crate::contract::command::{SqRequest, TransferKind};
use crate::workflow::{encode, StageError};

/// pinned: the ServiceProvider PerformNWBSQ names with a LocationID when the command names
/// none; W `API/Orders/PerformNWBSQ` qualifies "the AAPT NwB service type".
const NWB_SERVICE_PROVIDER: &str = "AAPT";

#[derive(Debug, Serialize, Deserialize)]
pub struct Qualified {
    pub account_presale_sq_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AddressFound {
    pub address: Address,
}

pub(super) fn transfer(kind: TransferKind) -> TransferType {
    match kind {
        TransferKind::New => TransferType::New,
        TransferKind::Churn => TransferType::Churn,
    }
}

fn qualified(account_presale_sq_id: i64) -> Result<Value, StageError> {
    encode(Qualified {
        account_presale_sq_id,
    })
}

pub(super) async fn simple_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let sq = cx
        .client
        .call(&wire::PerformSimpleSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id: cx.data.service_type_id,
        })
        .await?;
    qualified(sq)
}

pub(super) async fn phone_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let Some((kind, number)) = cx.data.sq.phone() else {
        return Err(StageError::permanent(
            "phone_sq without a general phone SQ request",
        ));
    };
    let range_size = match &cx.data.sq {
        SqRequest::GeneralPhone { range_size, .. } => *range_size,
        _ => None,
    };
    let sq = cx
        .client
        .call(&wire::PerformGeneralPhoneSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id: cx.data.service_type_id,
            transfer_type: transfer(kind),
            identifier: number.map(str::to_string),
            range_size,
        })
        .await?;
    qualified(sq)
}

/// The command's address must match exactly one the platform knows.
pub(super) async fn find_address(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let SqRequest::Nwb {
        address: Some(address),
        ..
    } = &cx.data.sq
    else {
        return Err(StageError::permanent(
            "find_address without an NWB SQ address",
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

/// PerformNWBSQ on the command's FNN, or on the address found.
pub(super) async fn nwb_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let SqRequest::Nwb {
        transfer_type,
        fnn,
        service_provider,
        mark_as_available,
        ..
    } = &cx.data.sq
    else {
        return Err(StageError::permanent("nwb_sq without an NWB SQ request"));
    };
    let details = match fnn {
        Some(fnn) => NwbIdentifier::Fnn(fnn.clone()),
        None => {
            let found: AddressFound = cx.output(ServiceOrderStage::FindAddress)?;
            NwbIdentifier::Location {
                service_provider: service_provider
                    .clone()
                    .unwrap_or_else(|| NWB_SERVICE_PROVIDER.to_string()),
                location_id: found
                    .address
                    .location_id
                    .ok_or_else(|| StageError::permanent("the address found has no LocationID"))?,
                mark_as_available: *mark_as_available,
            }
        }
    };
    let sq = cx
        .client
        .call(&wire::PerformNWBSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id: cx.data.service_type_id,
            transfer_type: transfer(*transfer_type),
            details,
        })
        .await?;
    qualified(sq)
}
