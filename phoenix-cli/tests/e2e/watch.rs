//! `phoenix experiment status --watch`: follows the WebSocket until the experiment
//! completes or ends, with the exit code scripts rely on.

use phoenix_client::api::experiment::{Experiment, Phase};

use crate::harness::{Agent, Server, first_line, wait_exit};

/// Creates an experiment on the agents labelled `role`, starts it, and lets `agent` deploy.
fn running(server: &Server, agent: &Agent, name: &str, role: &str) -> String {
    let label = format!("role={role}");
    let created: Experiment = server
        .run(&[
            "experiment",
            "create",
            "--name",
            name,
            "--candidate",
            "topk",
            "--duration",
            "60",
            "--label",
            &label,
            "-o",
            "json",
        ])
        .json();
    let id = created.id.to_string();
    let started: Experiment = server
        .run(&["experiment", "start", &id, "-o", "json"])
        .json();
    assert_eq!(started.phase, Phase::Deploying);
    assert_eq!(started.targets.len(), 1);
    server.ack_next(agent);
    id
}

#[test]
fn watch_exits_1_when_the_experiment_is_rolled_back() {
    let server = Server::start();
    let agent = server.agent("web-1", &[("role", "web")]);
    let id = running(&server, &agent, "rolled back while watched", "web");
    let mut watcher = server.spawn(&["experiment", "status", &id, "--watch"]);
    // The watcher is subscribed and has printed the running state.
    let line = first_line(&mut watcher);
    assert!(line.contains("running"), "{line}");
    server
        .run(&[
            "experiment",
            "rollback",
            &id,
            "--instant",
            "--reason",
            "watch test",
        ])
        .ok();
    assert_eq!(wait_exit(&mut watcher), 1);
}

#[test]
fn watch_exits_0_when_completed_and_when_promoted_and_1_when_stopped() {
    let server = Server::start();
    let agent = server.agent("web-1", &[("role", "web")]);
    let id = running(&server, &agent, "judged while watched", "web");
    let mut watcher = server.spawn(&["experiment", "status", &id, "--watch"]);
    let line = first_line(&mut watcher);
    assert!(line.contains("running"), "{line}");
    // The run's duration elapses on the server's clock; the controller judges it.
    server.advance(61);
    server.heartbeat(&agent);
    server.tick();
    assert_eq!(wait_exit(&mut watcher), 0);

    // Already completed: the watcher returns at once, JSON mode prints the experiment.
    let done: Experiment = server
        .run(&["experiment", "status", &id, "--watch", "-o", "json"])
        .json();
    assert_eq!(done.phase, Phase::Completed);

    // Promotion (forced: no passing verdict on no data) ends Promoted: exit 0.
    let promoting: Experiment = server
        .run(&[
            "experiment",
            "promote",
            &id,
            "--force",
            "--reason",
            "test",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(promoting.phase, Phase::Promoting);
    let mut watcher = server.spawn(&["experiment", "status", &id, "-w"]);
    let line = first_line(&mut watcher);
    assert!(line.contains("promoting"), "{line}");
    server.heartbeat(&agent);
    server.ack_next(&agent);
    assert_eq!(wait_exit(&mut watcher), 0);
    let promoted: Experiment = server.run(&["experiment", "get", &id, "-o", "json"]).json();
    assert_eq!(promoted.phase, Phase::Promoted);

    // Stop: Stopping until the agent confirms, then Stopped: exit 1.
    let db = server.agent("db-1", &[("role", "db")]);
    let other = running(&server, &db, "stopped while watched", "db");
    let stopping: Experiment = server
        .run(&[
            "experiment",
            "stop",
            &other,
            "--reason",
            "enough",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(stopping.phase, Phase::Stopping);
    let mut watcher = server.spawn(&["experiment", "status", &other, "--watch"]);
    let line = first_line(&mut watcher);
    assert!(line.contains("stopping"), "{line}");
    server.ack_next(&db);
    assert_eq!(wait_exit(&mut watcher), 1);
    let stderr = server
        .run(&["experiment", "status", &other, "--watch"])
        .fails(1)
        .to_owned();
    assert!(stderr.contains("ended stopped"), "{stderr}");
}
