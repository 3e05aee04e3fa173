//! With the `tracing` feature, an invocation's path shows as nested spans: `invoke` >
//! `acquire` > `create` > `init` > `run` for a cold start, then `execute` > `run`. Built only
//! with `--features tracing`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{function, kvm_backend};
use lambda::core::{CodeLocation, FunctionConfig};
use lambda::sched::{InvokeRequest, Service};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that records each span's name and the name of the span it was opened in.
#[derive(Default)]
struct Recorder {
    next_id: AtomicU64,
    names: Mutex<Vec<&'static str>>,
    stack: Mutex<Vec<u64>>,
    /// (span, its parent at creation) in order of creation.
    opened: Mutex<Vec<(&'static str, Option<&'static str>)>>,
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut names = self.names.lock().unwrap();
        names.push(span.metadata().name());
        let parent = self
            .stack
            .lock()
            .unwrap()
            .last()
            .map(|&parent| names[parent as usize - 1]);
        self.opened
            .lock()
            .unwrap()
            .push((span.metadata().name(), parent));
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, span: &Id) {
        self.stack.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut stack = self.stack.lock().unwrap();
        if stack.last() == Some(&span.into_u64()) {
            stack.pop();
        }
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn an_invocation_shows_as_nested_spans() {
    let service = Service::builder(Arc::new(kvm_backend()))
        .manual()
        .build()
        .unwrap();
    service
        .create_function(FunctionConfig::new(
            "echo",
            CodeLocation::Executable(function("runtime-loop")),
        ))
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::with_default(recorder.clone(), || {
        for _ in 0..2 {
            let response = service.invoke(InvokeRequest::new("echo", "{}")).unwrap();
            assert!(response.is_success(), "{response:?}");
        }
    });
    let opened = recorder.opened.lock().unwrap().clone();
    let cold = [
        ("invoke", None),
        ("acquire", Some("invoke")),
        ("create", Some("acquire")),
        ("init", Some("create")),
        ("run", Some("init")),
        ("execute", Some("invoke")),
        ("run", Some("execute")),
    ];
    let warm = [
        ("invoke", None),
        ("acquire", Some("invoke")),
        ("execute", Some("invoke")),
        ("run", Some("execute")),
    ];
    let expected: Vec<_> = cold.iter().chain(warm.iter()).copied().collect();
    assert_eq!(opened, expected);
}
