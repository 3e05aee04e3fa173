//! What a kernel read back from a snapshot file must be besides its files, descriptors and
//! pipes: a kernel of the function's contract, between calls in the environment's first
//! process, with a thread table its calls could have made (the parts of `Kernel::check`
//! that say so).

use lambda_core::Contract;
use lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES;
use lambda_core::runtime_api::RuntimeApi;

use super::Guest;
use crate::kernel::fork::{ChildEnd, MAX_UNREAPED};
use crate::kernel::{MAX_THREADS, Stdio, Step};

const FORK: u64 = 57;
const NEXT: &[u8] = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rapi\r\n\r\n";

/// A Runtime API past Init with a `next` parked, as a snapshot holds it.
fn waiting_api() -> RuntimeApi {
    let mut api = RuntimeApi::new("arn:test");
    let conn = api.connect().unwrap();
    assert_eq!(api.receive(conn, NEXT), NEXT.len());
    assert!(api.next_parked());
    while api.next_event().is_some() {}
    api
}

#[test]
fn a_kernel_must_be_of_the_functions_contract() {
    let one_shot = Guest::one_shot(b"");
    one_shot.kernel.check_contract(Contract::Stdio).unwrap();
    let refused = one_shot.kernel.check_contract(Contract::RuntimeApi);
    assert!(refused.unwrap_err().contains("RuntimeApi function"));

    let mut runtime = Guest::runtime();
    // Still in Init: a snapshot is taken where the runtime waits for an invocation.
    let refused = runtime.kernel.check_contract(Contract::RuntimeApi);
    assert!(refused.unwrap_err().contains("Init phase"));
    runtime.kernel.api = Some(waiting_api());
    runtime.kernel.check_contract(Contract::RuntimeApi).unwrap();
    let refused = runtime.kernel.check_contract(Contract::Stdio);
    assert!(refused.unwrap_err().contains("Stdio function"));
    // A Runtime API function's kernel without its API: every invocation would panic.
    runtime.kernel.api = None;
    let refused = runtime.kernel.check_contract(Contract::RuntimeApi);
    assert!(refused.unwrap_err().contains("RuntimeApi function"));
}

#[test]
fn a_one_shot_response_may_hold_no_more_than_the_limit() {
    let mut guest = Guest::one_shot(b"");
    let Stdio::OneShot { response, .. } = &mut guest.kernel.stdio else {
        unreachable!("a one-shot kernel")
    };
    *response = vec![b'x'; MAX_SYNC_PAYLOAD_BYTES];
    guest.kernel.check_contract(Contract::Stdio).unwrap();
    let Stdio::OneShot { response, .. } = &mut guest.kernel.stdio else {
        unreachable!("a one-shot kernel")
    };
    response.push(b'x');
    let refused = guest.kernel.check_contract(Contract::Stdio);
    assert!(refused.unwrap_err().contains("more than a response may"));
}

#[test]
fn a_kernel_in_a_call_or_in_a_child_process_is_refused() {
    let mut guest = Guest::one_shot(b"");
    guest.kernel.check_between_calls().unwrap();
    guest.kernel.pending_step = Some(Step::SetFsBase(u64::MAX));
    let refused = guest.kernel.check_between_calls();
    assert!(
        refused
            .unwrap_err()
            .contains("still waits for the run loop")
    );
    guest.kernel.pending_step = None;

    assert_eq!(guest.step(FORK, &[]), Step::Fork);
    guest.kernel.begin_child(&guest.memory).unwrap();
    let refused = guest.kernel.check_between_calls();
    assert!(refused.unwrap_err().contains("parent waits in fork"));
}

#[test]
fn more_unreaped_children_than_fork_allows_are_refused() {
    let mut guest = Guest::one_shot(b"");
    for pid in 2..MAX_UNREAPED as u32 + 2 {
        guest.kernel.children.insert(pid, ChildEnd::Exited(0));
    }
    guest.kernel.check_between_calls().unwrap();
    let pid = MAX_UNREAPED as u32 + 2;
    guest.kernel.children.insert(pid, ChildEnd::Exited(0));
    let refused = guest.kernel.check_between_calls();
    assert!(refused.unwrap_err().contains("unreaped children"));
}

/// The thread table as a snapshot file could bring it back, after `change` to its
/// serialized form; what its check says.
fn forged_threads(change: impl FnOnce(&mut serde_json::Value)) -> Result<(), String> {
    let guest = Guest::one_shot(b"");
    super::reserialized(&guest.kernel.threads, change).check()
}

#[test]
fn a_thread_table_a_snapshot_could_not_hold_is_refused() {
    forged_threads(|_| {}).unwrap();
    let refused = |change: &dyn Fn(&mut serde_json::Value), because: &str| {
        let why = forged_threads(change).expect_err(because);
        assert!(why.contains(because), "{why}");
    };
    // The next id `free_tid` starts from: 0 would hand out thread 0.
    refused(
        &|v| v["next_tid"] = 0.into(),
        "next thread id 0 is out of range",
    );
    refused(
        &|v| v["next_tid"] = u32::MAX.into(),
        "next thread id 4294967295 is out of range",
    );
    let moved = |v: &mut serde_json::Value| {
        let thread = v["threads"]["1"].clone();
        v["threads"] = serde_json::json!({ "0": thread });
        v["current"] = 0.into();
    };
    refused(&moved, "thread id 0 is outside");
    refused(&|v| v["threads"] = serde_json::json!({}), "holds 0 threads");
    let crowded = |v: &mut serde_json::Value| {
        let thread = v["threads"]["1"].clone();
        for tid in 2..=MAX_THREADS + 1 {
            v["threads"][tid.to_string()] = thread.clone();
        }
    };
    refused(&crowded, "holds 1025 threads");
}
