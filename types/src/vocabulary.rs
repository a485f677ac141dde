//! The closed vocabularies of the flow record — step kinds, verdicts, capture modes, statuses
//! — that make one query run across every pipeline. Change a vocabulary here: messages,
//! dropdowns and validation are built from each enum's `ALL` and `names()`.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in the order of the vocabulary.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Every wire spelling, comma-separated, for messages (`generate, retrieve, …`).
            pub fn names() -> String {
                Self::ALL
                    .iter()
                    .map(|value| value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }

            /// Parses the wire spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// The fixed vocabulary of step kinds that makes cross-pipeline questions possible.
    StepKind {
        /// Produces something new (LLM keyword generation…).
        Generate => "generate",
        /// Fetches candidates (catalog search…).
        Retrieve => "retrieve",
        /// Eliminates candidates by rules.
        Filter => "filter",
        /// Orders candidates.
        Rank => "rank",
        /// LLM or human evaluation of candidates.
        Judge => "judge",
        /// Picks the output.
        Select => "select",
        /// Reshapes data without deciding.
        Transform => "transform",
        /// Anything else.
        Custom => "custom",
    }
}

wire_enum! {
    /// What happened to a candidate in a step.
    Verdict {
        Kept => "kept",
        Rejected => "rejected",
        Selected => "selected",
    }
}

wire_enum! {
    /// How much of a step's candidates the observations hold.
    Capture {
        /// Every candidate.
        Full => "full",
        /// Every kept/selected candidate and a sample of the rejected ones.
        Sampled => "sampled",
        /// No observations: counts and reason histogram only.
        CountsOnly => "counts_only",
    }
}

wire_enum! {
    /// Life of a flow.
    FlowStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

/// Life of a step: the same vocabulary as a flow's.
pub type StepStatus = FlowStatus;

// `wire_enum!` derives for every enum alike, so defaults are written by hand.
#[allow(clippy::derivable_impls)]
impl Default for Capture {
    fn default() -> Self {
        Capture::Full
    }
}

#[allow(clippy::derivable_impls)]
impl Default for FlowStatus {
    fn default() -> Self {
        FlowStatus::Succeeded
    }
}

impl StepKind {
    /// Whether a step of this kind only chooses among its input — `filter`, `rank`, `judge`,
    /// `select` — so its `candidates_out` is at most its `candidates_in`. The other kinds may
    /// create candidates: `generate` makes 3 keywords out of nothing, `retrieve` turns 3
    /// keywords into 5,000 products, `transform` and `custom` may do either. A step that
    /// creates candidates eliminates none (share 0).
    pub fn chooses_among_input(self) -> bool {
        matches!(
            self,
            StepKind::Filter | StepKind::Rank | StepKind::Judge | StepKind::Select
        )
    }
}

impl Verdict {
    /// Kept and selected candidates pass on to the next step.
    pub fn passes(self) -> bool {
        matches!(self, Verdict::Kept | Verdict::Selected)
    }
}
