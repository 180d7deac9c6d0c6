//! The service qualification, one of three kinds: `simple_sq` (PerformSimpleSQ),
//! `phone_sq` (PerformGeneralPhoneSQ), or `nwb_sq` (PerformNWBSQ) on an FNN or on the
//! location `find_address` (FindNWBSQAddress) finds; and `qualify_services`, the SQs of
//! the package's other service types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::package::PackageChosen;
use super::services::{other_types, services_of};
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
    qualified(simple(cx, cx.data.service_type_id).await?)
}

pub(super) async fn phone_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    qualified(phone(cx, cx.data.service_type_id, &cx.data.sq).await?)
}

/// The command's address must match exactly one the platform knows.
pub(super) async fn find_address(cx: &Ctx<'_>) -> Result<Value, StageError> {
    encode(find(cx, cx.data.service_type_id, &cx.data.sq).await?)
}

/// PerformNWBSQ on the command's FNN, or on the address found.
pub(super) async fn nwb_sq(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found = match &cx.data.sq {
        SqRequest::Nwb { fnn: None, .. } => Some(cx.output(ServiceOrderStage::FindAddress)?),
        _ => None,
    };
    qualified(nwb(cx, cx.data.service_type_id, &cx.data.sq, found).await?)
}

/// The SQ of one service type of the package other than the ordered one.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceQualified {
    pub service_type_id: i64,
    pub account_presale_sq_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServicesQualified {
    pub services: Vec<ServiceQualified>,
}

/// Every other service type of the package gets the SQ the command asks for it, each
/// kind as its own stage does it (an NWB SQ on an address finds the location first). All
/// before select_package, so a repeat only replaces SQs nothing uses yet.
pub(super) async fn qualify_services(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    // A command naming a service the package does not hold fails before any SQ.
    services_of(cx.data, &chosen.package)?;
    let mut services = Vec::new();
    for (service_type_id, sq) in other_types(cx.data, &chosen.package) {
        let account_presale_sq_id = match sq {
            SqRequest::Simple => simple(cx, service_type_id).await?,
            SqRequest::GeneralPhone { .. } => phone(cx, service_type_id, sq).await?,
            SqRequest::Nwb { fnn: Some(_), .. } => nwb(cx, service_type_id, sq, None).await?,
            SqRequest::Nwb { .. } => {
                let found = find(cx, service_type_id, sq).await?;
                nwb(cx, service_type_id, sq, Some(found)).await?
            }
        };
        services.push(ServiceQualified {
            service_type_id,
            account_presale_sq_id,
        });
    }
    encode(ServicesQualified { services })
}

async fn simple(cx: &Ctx<'_>, service_type_id: i64) -> Result<i64, StageError> {
    Ok(cx
        .client
        .call(&wire::PerformSimpleSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id,
        })
        .await?)
}

async fn phone(cx: &Ctx<'_>, service_type_id: i64, sq: &SqRequest) -> Result<i64, StageError> {
    let Some((kind, number)) = sq.phone() else {
        return Err(StageError::permanent(
            "phone_sq without a general phone SQ request",
        ));
    };
    let range_size = match sq {
        SqRequest::GeneralPhone { range_size, .. } => *range_size,
        _ => None,
    };
    Ok(cx
        .client
        .call(&wire::PerformGeneralPhoneSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id,
            transfer_type: transfer(kind),
            identifier: number.map(str::to_string),
            range_size,
        })
        .await?)
}

async fn find(
    cx: &Ctx<'_>,
    service_type_id: i64,
    sq: &SqRequest,
) -> Result<AddressFound, StageError> {
    let SqRequest::Nwb {
        address: Some(address),
        ..
    } = sq
    else {
        return Err(StageError::permanent(
            "find_address without an NWB SQ address",
        ));
    };
    let mut found = cx
        .client
        .call(&wire::FindNWBSQAddress {
            service_type_id,
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
        1 => Ok(AddressFound {
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

/// PerformNWBSQ on the request's FNN, else on the location `found`.
async fn nwb(
    cx: &Ctx<'_>,
    service_type_id: i64,
    sq: &SqRequest,
    found: Option<AddressFound>,
) -> Result<i64, StageError> {
    let SqRequest::Nwb {
        transfer_type,
        fnn,
        service_provider,
        mark_as_available,
        ..
    } = sq
    else {
        return Err(StageError::permanent("nwb_sq without an NWB SQ request"));
    };
    let details = match (fnn, found) {
        (Some(fnn), _) => NwbIdentifier::Fnn(fnn.clone()),
        (None, Some(found)) => NwbIdentifier::Location {
            service_provider: service_provider
                .clone()
                .unwrap_or_else(|| NWB_SERVICE_PROVIDER.to_string()),
            location_id: found
                .address
                .location_id
                .ok_or_else(|| StageError::permanent("the address found has no LocationID"))?,
            mark_as_available: *mark_as_available,
        },
        (None, None) => {
            return Err(StageError::permanent(
                "nwb_sq without an FNN or an address found",
            ))
        }
    };
    Ok(cx
        .client
        .call(&wire::PerformNWBSQ {
            account_presale_id: cx.presale_id()?,
            service_type_id,
            transfer_type: transfer(*transfer_type),
            details,
        })
        .await?)
}
