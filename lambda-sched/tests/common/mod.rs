//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use lambda_core::{
    Backend, CodeLocation, EnvironmentError, ExecutionEnvironment, FunctionConfig, Invocation,
    InvokeResult,
};
use lambda_sched::fake::FakeBackend;
use lambda_sched::{ManualClock, Service, ServiceBuilder};

pub fn config(name: &str) -> FunctionConfig {
    FunctionConfig::new(name, CodeLocation::Executable("/fake/bootstrap".into()))
}

/// A manual service over `backend` with a manual clock.
pub fn builder(backend: Arc<dyn Backend>, clock: &Arc<ManualClock>) -> ServiceBuilder {
    Service::builder(backend).clock(clock.clone()).manual()
}

/// A manual service over a fake backend that advances the clock for hangs.
pub fn fake_service() -> (Service, Arc<ManualClock>, Arc<FakeBackend>) {
    let clock = Arc::new(ManualClock::new());
    let fake = FakeBackend::with_clock(clock.clone());
    let service = builder(fake.clone(), &clock).build().unwrap();
    (service, clock, fake)
}

/// A backend whose environments, for the payload `gate`, announce that they started and then
/// wait for the test to open the gate: invocations held in flight without sleeping.
#[derive(Debug)]
pub struct GateBackend {
    pub fake: Arc<FakeBackend>,
    entered_tx: Sender<()>,
    entered_rx: Receiver<()>,
    open_tx: Sender<()>,
    open_rx: Receiver<()>,
}

impl GateBackend {
    pub fn new(fake: Arc<FakeBackend>) -> Arc<Self> {
        let (entered_tx, entered_rx) = crossbeam_channel::unbounded();
        let (open_tx, open_rx) = crossbeam_channel::unbounded();
        Arc::new(GateBackend {
            fake,
            entered_tx,
            entered_rx,
            open_tx,
            open_rx,
        })
    }

    /// Waits until `n` invocations are inside their environments.
    pub fn wait_entered(&self, n: usize) {
        for _ in 0..n {
            self.entered_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("an invocation entered the gate");
        }
    }

    /// Lets `n` held invocations finish.
    pub fn open(&self, n: usize) {
        for _ in 0..n {
            self.open_tx.send(()).unwrap();
        }
    }
}

struct GateEnv {
    inner: Box<dyn ExecutionEnvironment>,
    entered: Sender<()>,
    open: Receiver<()>,
}

impl ExecutionEnvironment for GateEnv {
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        if invocation.payload == b"gate" {
            self.entered.send(()).unwrap();
            self.open
                .recv_timeout(Duration::from_secs(10))
                .expect("the test opened the gate");
        }
        self.inner.invoke(invocation)
    }

    fn init_duration(&self) -> Duration {
        self.inner.init_duration()
    }

    fn shutdown(self: Box<Self>) {
        self.inner.shutdown();
    }
}

impl Backend for GateBackend {
    fn name(&self) -> &str {
        "gate"
    }

    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        let inner = self.fake.create(config)?;
        Ok(Box::new(GateEnv {
            inner,
            entered: self.entered_tx.clone(),
            open: self.open_rx.clone(),
        }))
    }
}

/// A manual service over a gate backend.
pub fn gate_service(
    change: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
) -> (Service, Arc<ManualClock>, Arc<GateBackend>) {
    let clock = Arc::new(ManualClock::new());
    let gate = GateBackend::new(FakeBackend::with_clock(clock.clone()));
    let service = change(builder(gate.clone(), &clock)).build().unwrap();
    (service, clock, gate)
}
