//! The Lua scripts, each prefixed with `lua/lib.lua` and invoked by SHA (`EVALSHA`; the
//! driver loads a script again when Redis answers `NOSCRIPT`, e.g. after a restart).

use std::sync::LazyLock;

use redis::Script;

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        /// Every script, compiled once per process.
        pub(crate) struct Scripts {
            $(pub(crate) $name: Script,)*
        }

        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $($name: Script::new(concat!(
                include_str!("../lua/lib.lua"),
                "\n",
                include_str!(concat!("../lua/", stringify!($name), ".lua")),
            )),)*
        });
    };
}

scripts!(
    agent_health_append,
    agent_health_prune,
    agent_heartbeat,
    agent_mark_lost,
    agent_refusal,
    agent_register,
    agent_revoke,
    cancel,
    claim,
    complete,
    complete_batch,
    deployment_create,
    deployment_update,
    enqueue,
    experiment_commit,
    experiment_create,
    experiment_delete,
    experiment_list,
    expired,
    extend,
    fail,
    history_prune,
    history_put,
    history_range,
    prune,
    redrive,
    release,
    requeue,
    query_source_delete,
    query_source_put,
    samples_append,
    scan,
    snapshot_put,
    stats,
    token_create,
    token_find,
    token_revoke,
);
