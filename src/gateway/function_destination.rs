//! A function as the destination of asynchronous invocations, as Lambda's function
//! destinations are: the invocation record becomes an asynchronous event of the destination
//! function.

use std::sync::Weak;

use lambda_sched::{Destination, InvocationRecord, InvokeRequest, Service};

use super::api_error::ApiError;
use super::route::{qualified, split_function};

/// Sends invocation records to a function, by `Event` invocation.
#[derive(Debug)]
pub(super) struct FunctionDestination {
    /// The service (weakly: the service holds this destination in its configuration).
    service: Weak<Service>,
    /// The destination's name.
    function: String,
    /// Its version or alias, if the ARN named one.
    qualifier: Option<String>,
}

impl FunctionDestination {
    /// The destination a `DestinationConfig` ARN names: a function of `service`. Queues,
    /// topics and buses are refused: the engine has none.
    pub fn new(service: Weak<Service>, arn: &str) -> Result<Self, ApiError> {
        if !arn.starts_with("arn:") || !arn.contains(":function:") {
            return Err(ApiError::invalid_parameter(format!(
                "destination {arn} is not a Lambda function ARN; SQS, SNS, EventBridge and S3 \
                 destinations are not served (a host application can set any destination with \
                 Service::put_event_invoke_config)"
            )));
        }
        let (function, qualifier) = split_function(arn);
        if let Some(live) = service.upgrade() {
            live.get_function(&qualified(&function, qualifier.as_deref()))?;
        }
        Ok(FunctionDestination {
            service,
            function,
            qualifier,
        })
    }
}

impl Destination for FunctionDestination {
    fn deliver(&self, record: InvocationRecord) {
        let Some(service) = self.service.upgrade() else {
            return; // The service is gone; so is everything it would have run.
        };
        let mut request = InvokeRequest::event(self.function.clone(), record.to_json().to_string());
        request.qualifier = self.qualifier.clone();
        // A refusal (the destination was deleted, or is throttled) loses the record, as the
        // service counts: Lambda would retry it for a while; this engine does not.
        let _ = service.invoke(request);
    }
}
