//! A workflow's stages as an enum: each stage's name (as stage messages, events and the
//! store carry it), its effect, and whether the platform can tell if its call took effect.

use std::fmt;

use super::Effect;

/// The stages of one workflow. Implemented by [`stages!`](crate::workflow::stage::stages).
pub trait Stage: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// Every stage, in the order they can run.
    const ALL: &'static [Self];

    /// The stage's name in stage messages, events, metrics and the store.
    fn as_str(self) -> &'static str;

    /// Whether the stage's call may be repeated.
    fn effect(self) -> Effect;

    /// Whether the platform has a read-only lookup that tells if the stage's call took
    /// effect (the workflow's `probe` answers for it).
    fn has_probe(self) -> bool;

    /// The stage of a name, `None` for a stage the workflow does not have.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == name)
    }
}

/// Declares a workflow's stage enum, one line a stage in the order they can run:
/// `Variant = "name", Effect` with `+ probe` when the workflow can reconcile it.
/// The enum gets [`Stage`] and `Display` (its name).
macro_rules! stages {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $str:literal, $effect:ident $(+ $probe:ident)?; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $crate::workflow::stage::Stage for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $str, )+
                }
            }

            fn effect(self) -> $crate::workflow::Effect {
                match self {
                    $( $name::$variant => $crate::workflow::Effect::$effect, )+
                }
            }

            fn has_probe(self) -> bool {
                match self {
                    $( $name::$variant => $crate::workflow::stage::stages!(@probe $($probe)?), )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::workflow::stage::Stage::as_str(*self))
            }
        }
    };
    (@probe) => { false };
    (@probe probe) => { true };
}
pub(crate) use stages;

/// Checks a stage enum: names round-trip and are unique, and only non-idempotent stages
/// claim a probe (a repeatable one is simply run again). For the workflows' unit tests.
#[cfg(test)]
pub fn assert_well_formed<S: Stage>() {
    for (i, stage) in S::ALL.iter().enumerate() {
        assert_eq!(S::parse(stage.as_str()), Some(*stage), "{stage:?}");
        assert!(
            S::ALL[..i].iter().all(|s| s.as_str() != stage.as_str()),
            "{stage:?}: duplicate name"
        );
        if stage.has_probe() {
            assert_eq!(stage.effect(), Effect::NonIdempotent, "{stage:?}");
        }
    }
    assert_eq!(S::parse("no_such_stage"), None);
}
