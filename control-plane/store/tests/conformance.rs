//! The conformance suite against the embedded backend, on disk and in memory.

use std::sync::Arc;

use sluice_store::{Embedded, Store};

mod on_disk {
    use super::{Arc, Embedded, Store};

    sluice_store::conformance_tests!(|| async {
        Arc::new(Embedded::open_temporary().expect("open store")) as Arc<dyn Store>
    });
}

mod in_memory {
    use super::{Arc, Embedded, Store};

    sluice_store::conformance_tests!(|| async {
        Arc::new(Embedded::open_in_memory()) as Arc<dyn Store>
    });
}

/// `run_all` itself works (what a backend without the macro would call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_memory() {
    sluice_store::conformance::run_all(|| async {
        Arc::new(Embedded::open_in_memory()) as Arc<dyn Store>
    })
    .await;
}
