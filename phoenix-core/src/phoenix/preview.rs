//! Previews: a pipeline evaluated on a pasted sample or on an agent's latest cardinality
//! snapshot, optionally priced.

use super::{Phoenix, PhoenixError};
use crate::ids::AgentId;
use crate::inputs;
use crate::pipeline::preview::{self, Preview, Recorded};
use crate::pipeline::{PipelineRef, RenderContext, exposition};
use crate::validation::ValidationErrors;

/// What a preview runs on.
#[derive(Debug, Clone, PartialEq)]
pub enum PreviewSource {
    /// A recorded sample in Prometheus text exposition format, covering `interval_secs`
    /// (needed only to price it).
    Exposition {
        /// The text.
        text: String,
        /// Seconds the sample covers.
        interval_secs: Option<u32>,
    },
    /// The agent's latest cardinality snapshot, as the server stores it.
    Agent(AgentId),
}

/// A preview request.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRequest {
    /// The pipeline.
    pub pipeline: PipelineRef,
    /// Critical processes and metrics.
    pub context: RenderContext,
    /// What it runs on.
    pub source: PreviewSource,
    /// Price the input and the output under this catalogue entry.
    pub pricing_model: Option<String>,
}

impl Phoenix {
    /// Evaluates a pipeline on a pasted sample or on an agent's latest snapshot with the
    /// native engine, with the query inventory, priced under the pricing model when one is
    /// named. An unknown agent is `NotFound`; an agent without a snapshot `NotReady`; an
    /// unknown pricing model or a pasted sample's bad interval a field error.
    pub async fn preview_pipeline(&self, request: PreviewRequest) -> Result<Preview, PhoenixError> {
        let mut errors = ValidationErrors::new();
        if let Some(id) = &request.pricing_model {
            inputs::name(&mut errors, "pricing_model", id, inputs::MAX_TOKEN_CHARS);
        }
        let model = match &request.pricing_model {
            Some(_) if !errors.is_empty() => None,
            Some(id) => match self.catalogue().get(id) {
                Ok(model) => Some(model.clone()),
                Err(e) => {
                    errors.push("pricing_model", e.to_string());
                    None
                }
            },
            None => None,
        };
        if let PreviewSource::Exposition {
            interval_secs: Some(secs),
            ..
        } = &request.source
        {
            inputs::int(
                &mut errors,
                "interval_secs",
                u64::from(*secs),
                1..=u64::from(inputs::MAX_SNAPSHOT_INTERVAL_SECS),
            );
        }
        errors.into_result()?;
        let (recorded, value_field) = match request.source {
            PreviewSource::Exposition {
                text,
                interval_secs,
            } => {
                let sample = exposition::sample_from_exposition(
                    &text,
                    self.now().timestamp_millis(),
                    std::iter::empty::<(&str, &str)>(),
                )
                .map_err(|e| {
                    let mut errors = ValidationErrors::new();
                    errors.push("exposition", e.to_string());
                    PhoenixError::Validation(errors)
                })?;
                (Recorded::from_sample(sample, interval_secs), "exposition")
            }
            PreviewSource::Agent(id) => {
                let agent = self.stores().agents.get_agent(id).await?;
                let snapshot = self.stores().metrics.snapshot(id).await?.ok_or_else(|| {
                    PhoenixError::NotReady(format!(
                        "agent {id} ({}) has sent no cardinality snapshot yet: agents send one every {} s; ask again then, or paste a recorded sample",
                        agent.host,
                        self.config().snapshot_interval.num_seconds()
                    ))
                })?;
                (Recorded::from_snapshot(&snapshot.unpack()), "agent_id")
            }
        };
        let inventory = self.query_inventory().await?;
        Ok(preview::preview_recorded(
            self.templates(),
            &request.pipeline,
            &request.context,
            &recorded,
            &inventory,
            model.as_ref(),
            (value_field, "interval_secs"),
        )?)
    }
}
