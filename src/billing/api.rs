//! The billing APIs billflow calls: the key of each API's concurrency, rate and breaker
//! guard, and of its configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Api {
    /// CostGuard / IDI Billing (SOAP and REST).
    CostGuard,
    /// Emersion (SOAP).
    Emersion,
}

impl Api {
    pub const ALL: [Api; 2] = [Api::CostGuard, Api::Emersion];

    pub fn as_str(self) -> &'static str {
        match self {
            Api::CostGuard => "costguard",
            Api::Emersion => "emersion",
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API {0:?}; known APIs: {known}", known = Api::ALL.map(Api::as_str).join(", "))]
pub struct UnknownApi(pub String);

impl FromStr for Api {
    type Err = UnknownApi;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Api::ALL
            .into_iter()
            .find(|api| api.as_str() == s)
            .ok_or_else(|| UnknownApi(s.to_string()))
    }
}

impl Serialize for Api {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Api {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_name_the_known() {
        for api in Api::ALL {
            assert_eq!(api.as_str().parse::<Api>(), Ok(api));
        }
        let err = "costgaurd".parse::<Api>().unwrap_err().to_string();
        assert!(
            err.contains("\"costgaurd\"") && err.contains("costguard, emersion"),
            "{err}"
        );
    }
}
