//! What an experiment compares, where, for how long, and how it is judged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inputs;
use crate::judge::{Comparison, Criterion, KpiName};
use crate::pipeline::PipelineRef;
use crate::validation::ValidationErrors;

/// Shortest experiment duration accepted, in seconds.
pub const MIN_DURATION_SECS: u64 = 10;
/// Longest experiment duration accepted, in seconds (30 days).
pub const MAX_DURATION_SECS: u64 = 30 * 24 * 3600;
/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = inputs::MAX_NAME_CHARS;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// Most critical processes or metric patterns accepted.
pub const MAX_CRITICAL_ENTRIES: usize = 256;
/// Default of [`ExperimentSpec::auto_promote_min_hosts`]: two hosts must agree, so that no
/// single agent's reports can promote a candidate.
pub const DEFAULT_AUTO_PROMOTE_MIN_HOSTS: u32 = 2;
/// Largest [`ExperimentSpec::auto_promote_min_hosts`] accepted.
pub const MAX_AUTO_PROMOTE_MIN_HOSTS: u32 = 10_000;
/// Longest critical entry, host or label value, in characters.
pub const MAX_TOKEN_CHARS: usize = inputs::MAX_TOKEN_CHARS;

/// Which agents an experiment runs on. Resolved once, at start, against live agents.
/// An agent matches when it carries every label in `labels` and, if `hosts` is not empty,
/// its host name or id is in `hosts`. An empty selector matches every live agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetSelector {
    /// Labels the agent must carry (exact match).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host names or agent ids.
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl TargetSelector {
    /// True when an agent with this host name, id and labels is selected.
    #[must_use]
    pub fn matches(&self, host: &str, agent_id: &str, labels: &BTreeMap<String, String>) -> bool {
        let labels_ok = self
            .labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v));
        let host_ok =
            self.hosts.is_empty() || self.hosts.iter().any(|h| h == host || h == agent_id);
        labels_ok && host_ok
    }
}

/// The experiment definition, validated at create time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    /// The pipeline in use today.
    pub baseline: PipelineRef,
    /// The cheaper pipeline under test.
    pub candidate: PipelineRef,
    /// Where it runs.
    #[serde(default)]
    pub targets: TargetSelector,
    /// How long both pipelines run side by side, seconds (warm-up included).
    pub duration_secs: u64,
    /// Samples taken in the first `warmup_secs` of the run are not judged.
    #[serde(default)]
    pub warmup_secs: u64,
    /// Processes that must stay visible (executable names; `*` globs allowed).
    #[serde(default)]
    pub critical_processes: Vec<String>,
    /// Metric name patterns that must stay visible (`*` globs allowed).
    #[serde(default)]
    pub critical_metrics: Vec<String>,
    /// Success criteria; defaults to [`Criterion::defaults`].
    #[serde(default = "Criterion::defaults")]
    pub criteria: Vec<Criterion>,
    /// Roll back automatically when the verdict is `Fail`.
    #[serde(default)]
    pub auto_rollback: bool,
    /// Promote automatically when the verdict is `Pass`.
    #[serde(default)]
    pub auto_promote: bool,
    /// Automatic promotion also needs at least this many hosts whose own values each meet
    /// every critical criterion ([`crate::judge::Verdict::hosts_passing_critical`]); with
    /// fewer, a passing experiment waits in `Completed` for an operator's promote.
    #[serde(default = "default_auto_promote_min_hosts")]
    pub auto_promote_min_hosts: u32,
    /// Pricing catalogue entry the cost is reported in.
    #[serde(default = "default_pricing_model")]
    pub pricing_model: String,
    /// The experiment fails when fewer live agents than this remain.
    #[serde(default = "default_min_agents")]
    pub min_agents: u32,
    /// Agents sample both pipelines every `sample_interval_secs`.
    #[serde(default = "default_sample_interval")]
    pub sample_interval_secs: u32,
}

/// The pricing model of an experiment that names none, and of the fleet's cost flow.
pub const DEFAULT_PRICING_MODEL: &str = "grafana-cloud-pro";

fn default_pricing_model() -> String {
    DEFAULT_PRICING_MODEL.to_owned()
}

fn default_auto_promote_min_hosts() -> u32 {
    DEFAULT_AUTO_PROMOTE_MIN_HOSTS
}

fn default_min_agents() -> u32 {
    1
}

fn default_sample_interval() -> u32 {
    10
}

impl ExperimentSpec {
    /// A spec with defaults for everything but the two pipelines and the duration.
    #[must_use]
    pub fn new(baseline: PipelineRef, candidate: PipelineRef, duration_secs: u64) -> Self {
        Self {
            baseline,
            candidate,
            targets: TargetSelector::default(),
            duration_secs,
            warmup_secs: 0,
            critical_processes: Vec::new(),
            critical_metrics: Vec::new(),
            criteria: Criterion::defaults(),
            auto_rollback: false,
            auto_promote: false,
            auto_promote_min_hosts: DEFAULT_AUTO_PROMOTE_MIN_HOSTS,
            pricing_model: default_pricing_model(),
            min_agents: default_min_agents(),
            sample_interval_secs: default_sample_interval(),
        }
    }

    /// Checks everything that can be checked without the template registry or the pricing
    /// catalogue, recording every problem under `path` (e.g. `spec`).
    pub fn validate_into(&self, path: &str, errors: &mut ValidationErrors) {
        for (name, pipeline) in [("baseline", &self.baseline), ("candidate", &self.candidate)] {
            if pipeline.template.trim().is_empty() {
                errors.push(format!("{path}.{name}.template"), "must not be empty");
            }
        }
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&self.duration_secs) {
            errors.push(
                format!("{path}.duration_secs"),
                format!("must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS} seconds"),
            );
        }
        if self.warmup_secs >= self.duration_secs {
            errors.push(
                format!("{path}.warmup_secs"),
                "must be shorter than duration_secs, or nothing would be judged",
            );
        }
        if !(1..=3600).contains(&self.sample_interval_secs) {
            errors.push(
                format!("{path}.sample_interval_secs"),
                "must be between 1 and 3600 seconds",
            );
        } else if u64::from(self.sample_interval_secs) > self.duration_secs {
            errors.push(
                format!("{path}.sample_interval_secs"),
                "must not exceed duration_secs",
            );
        }
        if self.min_agents == 0 {
            errors.push(format!("{path}.min_agents"), "must be at least 1");
        }
        if !(1..=MAX_AUTO_PROMOTE_MIN_HOSTS).contains(&self.auto_promote_min_hosts) {
            errors.push(
                format!("{path}.auto_promote_min_hosts"),
                format!("must be between 1 and {MAX_AUTO_PROMOTE_MIN_HOSTS} hosts"),
            );
        }
        inputs::name(
            errors,
            &format!("{path}.pricing_model"),
            &self.pricing_model,
            MAX_TOKEN_CHARS,
        );
        for (field, list) in [
            ("critical_processes", &self.critical_processes),
            ("critical_metrics", &self.critical_metrics),
        ] {
            if list.len() > MAX_CRITICAL_ENTRIES {
                errors.push(
                    format!("{path}.{field}"),
                    format!("at most {MAX_CRITICAL_ENTRIES} entries"),
                );
            }
            for (i, entry) in list.iter().enumerate() {
                validate_token(&format!("{path}.{field}[{i}]"), entry, errors);
            }
        }
        inputs::selector(errors, &format!("{path}.targets"), &self.targets);
        if self.criteria.len() > 32 {
            errors.push(format!("{path}.criteria"), "at most 32 criteria");
        }
        for (i, c) in self.criteria.iter().enumerate() {
            if let Some(why) = c.kpi.withdrawn() {
                errors.push(format!("{path}.criteria[{i}].kpi"), why);
            }
            let p = format!("{path}.criteria[{i}].threshold");
            if !c.threshold.is_finite() {
                errors.push(p, "must be a finite number");
            } else if !c.kpi.is_percent() {
                #[allow(clippy::cast_precision_loss, reason = "a small constant")]
                let most = crate::queries::MAX_EXPERIMENT_QUERIES as f64;
                if !(0.0..=most).contains(&c.threshold) {
                    errors.push(
                        p,
                        format!("{} is a count of queries: between 0 and {most}", c.kpi),
                    );
                }
            } else if c.comparison == Comparison::AtLeast && c.threshold > 100.0 {
                errors.push(p, "a percentage that must be reached cannot exceed 100");
            } else if c.threshold < -100.0 {
                errors.push(p, "must be at least -100 (percent)");
            }
        }
    }
}

impl ExperimentSpec {
    /// Records an error for every criterion on `queries_broken` of a spec created without
    /// a query inventory: it could never be measured.
    pub fn criteria_without_queries_into(&self, path: &str, errors: &mut ValidationErrors) {
        for (i, c) in self.criteria.iter().enumerate() {
            if c.kpi == KpiName::QueriesBroken {
                errors.push(
                    format!("{path}.criteria[{i}].kpi"),
                    "queries_broken needs a query inventory, and none is imported (phoenix queries import)",
                );
            }
        }
    }
}

fn validate_token(path: &str, value: &str, errors: &mut ValidationErrors) {
    inputs::name(errors, path, value, MAX_TOKEN_CHARS);
}

/// A request to create an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewExperiment {
    /// Short human name.
    pub name: String,
    /// Longer description.
    #[serde(default)]
    pub description: String,
    /// The definition.
    pub spec: ExperimentSpec,
}

impl NewExperiment {
    /// Every problem with this request, at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        inputs::name(&mut errors, "name", &self.name, MAX_NAME_CHARS);
        inputs::free_text(
            &mut errors,
            "description",
            &self.description,
            MAX_DESCRIPTION_CHARS,
        );
        self.spec.validate_into("spec", &mut errors);
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::KpiName;

    fn valid() -> NewExperiment {
        NewExperiment {
            name: "topk on web".to_owned(),
            description: String::new(),
            spec: ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 600),
        }
    }

    #[test]
    fn a_valid_request_passes() {
        valid().validate().unwrap();
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let mut req = valid();
        req.name = String::new();
        req.spec.duration_secs = 1;
        req.spec.warmup_secs = 5;
        req.spec.min_agents = 0;
        req.spec.auto_promote_min_hosts = 0;
        req.spec.critical_processes = vec![String::new(), "x\ny".to_owned()];
        req.spec.criteria = vec![Criterion::at_least(KpiName::FidelityPct, f64::NAN, true)];
        let errors = req.validate().unwrap_err();
        let paths: Vec<_> = errors.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "name",
                "spec.duration_secs",
                "spec.warmup_secs",
                "spec.sample_interval_secs",
                "spec.min_agents",
                "spec.auto_promote_min_hosts",
                "spec.critical_processes[0]",
                "spec.critical_processes[1]",
                "spec.criteria[0].threshold",
            ]
        );
    }

    #[test]
    fn a_criterion_on_an_unmeasured_kpi_is_refused_with_the_reason() {
        let mut req = valid();
        req.spec.criteria = vec![
            Criterion::at_most(KpiName::AgentCpuOverheadPct, 20.0, false),
            Criterion::at_most(KpiName::AgentRssOverheadPct, 20.0, true),
        ];
        let errors = req.validate().unwrap_err();
        assert_eq!(errors.errors.len(), 1);
        assert_eq!(errors.errors[0].path, "spec.criteria[1].kpi");
        assert!(
            errors.errors[0].message.contains("not measured")
                && errors.errors[0].message.contains("one process"),
            "{}",
            errors.errors[0].message
        );
        req.spec.criteria.pop();
        req.validate().unwrap();
    }

    #[test]
    fn auto_promote_min_hosts_is_bounded() {
        let mut req = valid();
        assert_eq!(req.spec.auto_promote_min_hosts, 2);
        for ok in [1, MAX_AUTO_PROMOTE_MIN_HOSTS] {
            req.spec.auto_promote_min_hosts = ok;
            req.validate().unwrap();
        }
        for bad in [0, MAX_AUTO_PROMOTE_MIN_HOSTS + 1] {
            req.spec.auto_promote_min_hosts = bad;
            let errors = req.validate().unwrap_err();
            assert_eq!(errors.errors[0].path, "spec.auto_promote_min_hosts");
        }
        // A stored spec without the field reads as the default.
        let mut json = serde_json::to_value(&valid().spec).unwrap();
        json.as_object_mut()
            .unwrap()
            .remove("auto_promote_min_hosts");
        let spec: ExperimentSpec = serde_json::from_value(json).unwrap();
        assert_eq!(spec.auto_promote_min_hosts, DEFAULT_AUTO_PROMOTE_MIN_HOSTS);
    }

    #[test]
    fn selector_matches_labels_and_hosts() {
        let mut sel = TargetSelector::default();
        let labels: BTreeMap<_, _> = [("env".to_owned(), "prod".to_owned())].into();
        assert!(sel.matches("web-1", "id", &labels));
        sel.labels.insert("env".to_owned(), "prod".to_owned());
        assert!(sel.matches("web-1", "id", &labels));
        sel.labels.insert("role".to_owned(), "db".to_owned());
        assert!(!sel.matches("web-1", "id", &labels));
        sel.labels.remove("role");
        sel.hosts = vec!["web-2".to_owned()];
        assert!(!sel.matches("web-1", "id", &labels));
        assert!(sel.matches("web-2", "id", &labels));
        assert!(sel.matches("other", "web-2", &labels));
    }
}
