//! What the HTTP layer adds: one synchronous echo invocation of a warm `runtime-loop`
//! environment, through [`Service::invoke`] directly (the baseline) and as Lambda's `Invoke`
//! over a kept-alive loopback HTTP/1.1 connection to the gateway (the same service, the same
//! environment). Each side is sampled in a stretch of its own, one client at a time, so the
//! difference is the gateway's cost per request: parsing, routing, the JSON check, a hop to
//! a blocking thread and back, the response's headers. VM exits per invocation are the same
//! on both sides (the environment does the same work); `warm_invoke` reports them.
//!
//! `cargo bench --bench gateway` prints criterion's figures, then the summary. Throughput
//! under concurrency is measured by a second process: `bash benches/gateway/load.sh`.

mod measure;

#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{CodeLocation, FunctionConfig};
use lambda::gateway::{Gateway, GatewayConfig};
use lambda::sched::{InvokeRequest, Service};
use lambda::vmm::MicroVmBackend;
use measure::{print_table, sample, timed};

const EVENT: &str = r#"{"action":"echo","payload":"warm"}"#;
const RUNS: usize = 3000;
const WARMUP: usize = 200;
const PATH: &str = "/2015-03-31/functions/echo/invocations";

fn direct(service: &Service) -> (Duration, Option<measure::Cost>) {
    let (took, response) = timed(|| service.invoke(InvokeRequest::new("echo", EVENT)));
    assert_eq!(response.expect("invoke").payload, EVENT.as_bytes());
    (took, None)
}

fn over_http(connection: &mut http::Connection) -> (Duration, Option<measure::Cost>) {
    let (took, response) = timed(|| {
        connection.send("POST", PATH, &[], EVENT.as_bytes());
        connection.read().expect("a response")
    });
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, EVENT.as_bytes())
    );
    (took, None)
}

fn gateway_overhead(c: &mut Criterion) {
    let backend = MicroVmBackend::new().expect("KVM is needed for this bench");
    let service = Arc::new(
        Service::builder(Arc::new(backend))
            .build()
            .expect("service"),
    );
    let program = std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join("runtime-loop");
    service
        .create_function(FunctionConfig::new(
            "echo",
            CodeLocation::Executable(program),
        ))
        .expect("create");
    let gateway = Gateway::start(
        service.clone(),
        GatewayConfig::new("127.0.0.1:0".parse().expect("address")),
    )
    .expect("gateway");
    let mut connection = http::Connection::open(gateway.local_addr());

    let mut group = c.benchmark_group("gateway/echo");
    group.bench_function("service_invoke", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| direct(&service).0).sum())
    });
    group.bench_function("http_invoke", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| over_http(&mut connection).0).sum())
    });
    group.finish();

    let baseline = sample("Service::invoke", WARMUP, RUNS, || direct(&service), || {});
    let http = sample(
        "HTTP Invoke, kept-alive loopback connection",
        WARMUP,
        RUNS,
        || over_http(&mut connection),
        || {},
    );
    print_table(
        &format!(
            "warm `runtime-loop` echo, one client: {RUNS} invocations per side, each side alone"
        ),
        &baseline,
        &[&http],
    );
    println!(
        "  the gateway adds {:.1} us at the median, {:.1} us at p90",
        (http.median().as_secs_f64() - baseline.median().as_secs_f64()) * 1e6,
        (http.p90().as_secs_f64() - baseline.p90().as_secs_f64()) * 1e6
    );
    drop(connection);
    gateway.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = gateway_overhead
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
