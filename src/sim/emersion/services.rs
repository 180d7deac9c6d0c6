//! The service configuration rules of the Services service: the Set calls check the values
//! against the requirements of the SQ's service plan and replace what was set before, so a
//! repeated call is harmless. A refused call changes nothing.

use chrono::{NaiveDate, Utc};

use super::catalog::ServicePlan;
use super::*;
use crate::billing::emersion::wire::{CANNOT_HAVE_IDENT, MUST_HAVE_IDENT};

/// Shortest identifier password SetServiceIdentifier takes, in characters.
const MIN_IDENTIFIER_PASSWORD: usize = 8;

/// One `Contact` of SetServiceContacts; absent elements are empty.
pub(super) struct NewContact {
    pub(super) type_id: i64,
    pub(super) title: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    /// `YYYY-MM-DD`, or empty when not given.
    pub(super) date_of_birth: String,
    pub(super) email: String,
    pub(super) phone: String,
    /// How many `Details` (addresses), and `Phone` and `Email` elements in them, the
    /// contact has: each is taken as a primary one.
    pub(super) addresses: usize,
    pub(super) phones: usize,
    pub(super) emails: usize,
}

/// One `ServiceFeature` of SetServiceFeatureSetup; a Type without an ID reads as 0.
pub(super) struct NewFeature {
    pub(super) type_id: i64,
    pub(super) identifier: Option<String>,
    pub(super) option_type_id: Option<i64>,
}

pub(super) struct NewIdentifier {
    pub(super) sq_id: i64,
    pub(super) username: String,
    pub(super) realm: String,
    pub(super) password: String,
}

impl ServicePlan {
    /// Whether an SQ has everything mandatory set: properties, the minimum of each contact
    /// type and the identifier (features not set keep their defaults). CompleteOrder
    /// refuses an SQ without it.
    pub(super) fn is_configured(&self, sq: &Sq) -> bool {
        let properties = self
            .properties
            .iter()
            .filter(|p| p.mandatory)
            .all(|p| sq.configuration.contains_key(&p.type_id));
        let contacts = self.contact_types.iter().all(|t| {
            sq.contacts
                .iter()
                .filter(|c| c.type_id == t.type_id)
                .count()
                >= t.minimum
        });
        let identifier = self.identifiers.is_empty() || sq.identifier.is_some();
        properties && contacts && identifier
    }
}

impl Emersion {
    /// The SQ a Set call configures and the service plan of its package that applies,
    /// refused with the errors every Set page lists (W `API/Services/SetServiceConfiguration`).
    fn setup(&mut self, sq_id: i64) -> Result<(&mut Sq, &ServicePlan), Rejection> {
        let Emersion {
            presales,
            catalog,
            accounts,
            ..
        } = self;
        if sq_id < 1 {
            return Err("Missing Account Presale SQ ID".into());
        }
        let undefined = || Rejection::from("Account Presale SQ does not exist");
        let presale = presales
            .values_mut()
            .find(|p| p.sqs.iter().any(|sq| sq.sq_id == sq_id))
            .ok_or_else(undefined)?;
        let account = accounts
            .get(&presale.account_id)
            .ok_or("Account does not exist")?;
        // "does not belong to the same parent group as the API caller" (the page).
        if account.foreign {
            return Err("Invalid Account ID".into());
        }
        let selected = presale.package_plan_id.is_some();
        let sq = presale
            .sqs
            .iter_mut()
            .find(|sq| sq.sq_id == sq_id)
            .ok_or_else(undefined)?;
        // An SQ the presale's plan does not cover has no plan of its own either.
        let package_plan_id = sq
            .package_plan_id
            .filter(|_| selected)
            .ok_or("Missing Package Plan")?;
        let plan = catalog.service_plan_for(package_plan_id, sq.service_type_id)?;
        Ok((sq, plan))
    }

    pub(super) fn set_configuration(
        &mut self,
        sq_id: i64,
        values: Vec<(i64, String)>,
    ) -> Result<(), Rejection> {
        let (sq, plan) = self.setup(sq_id)?;
        // An empty value does not set a mandatory property.
        let given = |type_id: i64| values.iter().any(|(t, v)| *t == type_id && !v.is_empty());
        if plan
            .properties
            .iter()
            .any(|p| p.mandatory && !given(p.type_id))
        {
            return Err("Missing required properties".into());
        }
        let mut checked = Vec::new();
        for (type_id, value) in &values {
            let property = plan
                .properties
                .iter()
                .find(|p| p.type_id == *type_id)
                .ok_or("Unknown properties received")?;
            checked.push((property, *type_id, value));
        }
        for (property, type_id, value) in checked {
            if !property.value_type.accepts(value) {
                return Err(format!("Invalid value for property #{type_id}").into());
            }
        }
        sq.configuration = values.into_iter().collect();
        Ok(())
    }

    /// W `API/Services/SetServiceFeatureSetup`: every feature problem is reported at
    /// once; pinned: joined with "; " (the page says "serialized array").
    pub(super) fn set_features(
        &mut self,
        sq_id: i64,
        features: Vec<NewFeature>,
    ) -> Result<(), Rejection> {
        let (sq, plan) = self.setup(sq_id)?;
        if features.is_empty() || plan.features.is_empty() {
            // pinned: the SQ's id follows the page's text.
            return Err(
                format!("No Service Features to set for Account Presale SQ: {sq_id}").into(),
            );
        }
        let mut errors = Vec::new();
        let mut chosen = BTreeMap::new();
        for f in features {
            let Some(known) = plan.features.iter().find(|k| k.id == f.type_id) else {
                errors.push("UnknownFeatureTypeID".to_string());
                continue;
            };
            let option = f.option_type_id.unwrap_or(FEATURE_ON_OPTION_ID);
            if ![FEATURE_ON_OPTION_ID, FEATURE_OFF_OPTION_ID].contains(&option) {
                errors.push(format!(
                    "Option Type ID ({option}) supplied for Service Feature Type ({}) is not valid",
                    f.type_id
                ));
            }
            match (known.identifier_type, &f.identifier) {
                (CANNOT_HAVE_IDENT, Some(_)) => errors.push(format!(
                    "Service Feature Type ({}) cannot have identifier",
                    f.type_id
                )),
                (MUST_HAVE_IDENT, None) => errors.push(format!(
                    "Service Feature Type ({}) must have identifier",
                    f.type_id
                )),
                _ => {}
            }
            chosen.insert(
                f.type_id,
                FeatureChoice {
                    option_type_id: option,
                    identifier: f.identifier,
                },
            );
        }
        if !errors.is_empty() {
            return Err(errors.join("; ").into());
        }
        sq.features = chosen;
        Ok(())
    }

    pub(super) fn set_contacts(
        &mut self,
        sq_id: i64,
        contacts: Vec<NewContact>,
    ) -> Result<(), Rejection> {
        let (sq, plan) = self.setup(sq_id)?;
        for contact in &contacts {
            if !plan
                .contact_types
                .iter()
                .any(|t| t.type_id == contact.type_id)
            {
                return Err(format!("Unknown contact type #{}", contact.type_id).into());
            }
        }
        for t in &plan.contact_types {
            let count = contacts.iter().filter(|c| c.type_id == t.type_id).count();
            if count < t.minimum || count > t.maximum {
                return Err(format!(
                    "Contact type #{} requires between {} and {} contacts",
                    t.type_id, t.minimum, t.maximum
                )
                .into());
            }
        }
        let today = Utc::now().date_naive();
        let mut accepted = Vec::new();
        for contact in contacts {
            // W `API/Services/SetServiceContacts`; pinned: the client's contact shape has
            // no IsPrimary flag, so every address, phone and email given is a primary one.
            for (count, error) in [
                (contact.addresses, "Only 1 Primary Address required."),
                (contact.phones, "Only 1 Primary Phone Number required."),
                (contact.emails, "Only 1 Primary Email Address required."),
            ] {
                if count > 1 {
                    return Err(error.into());
                }
            }
            if contact.first_name.trim().is_empty() {
                return Err("Missing contact first name".into());
            }
            if contact.last_name.trim().is_empty() {
                return Err("Missing contact last name".into());
            }
            let date_of_birth = match contact.date_of_birth.trim() {
                "" => None,
                raw => Some(
                    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                        .ok()
                        .filter(|date| *date <= today)
                        .ok_or("Invalid date of birth")?,
                ),
            };
            accepted.push(Contact {
                type_id: contact.type_id,
                title: contact.title,
                first_name: contact.first_name,
                last_name: contact.last_name,
                date_of_birth,
                email: contact.email,
                phone: contact.phone,
            });
        }
        sq.contacts = accepted;
        Ok(())
    }

    /// GetServiceIdentifierRealm's realms, refused as W
    /// `API/Services/GetServiceIdentifierRealm` lists.
    pub(super) fn identifier_realms(
        &self,
        service_plan_id: i64,
    ) -> Result<&[(i64, &'static str)], Rejection> {
        if service_plan_id < 1 {
            return Err("Missing Service Plan ID".into());
        }
        if service_plan_id < SIX_DIGITS {
            return Err("Invalid Service Plan ID".into());
        }
        let plan = self
            .catalog
            .service_plan(service_plan_id)
            .map_err(|_| "Undefined Service Plan")?;
        if !self.catalog.has_service_type(service_plan_id) {
            return Err("Undefined Service Type".into());
        }
        Ok(&plan.realms)
    }

    pub(super) fn set_identifier(&mut self, new: NewIdentifier) -> Result<(), Rejection> {
        let (sq, plan) = self.setup(new.sq_id)?;
        if new.username.trim().is_empty() {
            return Err("Missing Username".into());
        }
        if new.username.chars().any(char::is_whitespace) {
            return Err("Invalid Username".into());
        }
        if new.password.is_empty() {
            return Err("Missing Password".into());
        }
        if new.password.chars().count() < MIN_IDENTIFIER_PASSWORD {
            return Err("Invalid Password".into());
        }
        // pinned: the page lists no realm error.
        if !plan.realms.iter().any(|(_, name)| *name == new.realm) {
            return Err("Invalid realm".into());
        }
        sq.identifier = Some(ServiceIdentifier {
            username: new.username,
            realm: new.realm,
        });
        Ok(())
    }
}
