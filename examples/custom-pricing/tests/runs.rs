//! The custom catalogue prices a real experiment: the contract's entries replace and
//! extend the built-ins, the negotiated rate is cheaper than the list price on the same
//! measurements, and an unknown pricing model is refused.

use std::sync::Arc;

use phoenix_core::clock::SystemClock;
use phoenix_core::cost::Catalogue;
use phoenix_core::experiment::{Actor, ExperimentSpec, NewExperiment, Phase};
use phoenix_core::pipeline::PipelineRef;
use phoenix_core::{MemoryStore, Phoenix, PhoenixError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_catalogue_prices_a_real_experiment() {
    let (finished, priced) = example_custom_pricing::run(example_embed_core::Options {
        duration_secs: 10,
        interval_secs: 1,
        ..Default::default()
    })
    .await
    .expect("the example runs");
    assert_eq!(finished.phase, Phase::Completed, "{finished:#?}");
    assert_eq!(finished.spec.pricing_model, "internal-chargeback");
    assert_eq!(priced.len(), 3, "{priced:#?}");
    let chargeback = &priced[0].savings;
    assert_eq!(chargeback.baseline.price_source.currency, "EUR");
    assert!(chargeback.baseline.per_month.micros() > 0);
    // Same measurements, same quantity; the negotiated rate and allotment cost less.
    let (list, contract) = (&priced[1].savings, &priced[2].savings);
    assert_eq!(list.baseline.quantity, contract.baseline.quantity);
    assert!(contract.baseline.per_month <= list.baseline.per_month);
    assert!(contract.baseline.included > list.baseline.included);
}

#[tokio::test]
async fn an_unknown_pricing_model_is_refused_with_the_available_ids() {
    let catalogue =
        Arc::new(Catalogue::builtin_with_overrides(example_custom_pricing::PRICING_TOML).unwrap());
    let phoenix = Phoenix::builder(MemoryStore::new().stores(), Arc::new(SystemClock))
        .catalogue(catalogue)
        .build();
    let mut spec = ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 60);
    spec.pricing_model = "vendor-x".to_owned();
    let err = phoenix
        .create_experiment(
            NewExperiment {
                name: "x".to_owned(),
                description: String::new(),
                spec,
            },
            &Actor::user("test"),
        )
        .await
        .unwrap_err();
    let PhoenixError::Validation(v) = err else {
        panic!("{err:?}")
    };
    let message = &v
        .errors
        .iter()
        .find(|e| e.path == "spec.pricing_model")
        .unwrap()
        .message;
    assert!(message.contains("internal-chargeback"), "{message}");
}
