//! OTLP logs, shared by `@type opentelemetry` input and output: the messages (prost types of
//! the `opentelemetry-proto` crate), their protobuf and JSON encodings ([`json`]), the mapping
//! between Fluentd records and LogRecords ([`map`]), and how an exporter classifies answers
//! ([`retry`]).

pub mod json;
pub mod map;
pub mod retry;

use prost::Message;

pub use opentelemetry_proto::tonic::collector::logs::v1::{
    logs_service_client::LogsServiceClient,
    logs_service_server::{LogsService, LogsServiceServer},
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
pub use opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs, SeverityNumber,
};
pub use opentelemetry_proto::tonic::resource::v1::Resource;

/// `type` of the record the plugin emits for an export request (its `RECORD_TYPE_LOGS`).
pub const RECORD_TYPE_LOGS: &str = "opentelemetry_logs";
pub const RECORD_TYPE_METRICS: &str = "opentelemetry_metrics";
pub const RECORD_TYPE_TRACES: &str = "opentelemetry_traces";

/// The gRPC method path of the logs service.
pub const GRPC_LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Decodes a protobuf `ExportLogsServiceRequest`.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    ExportLogsServiceRequest::decode(body).map_err(|e| format!("invalid protobuf: {e}"))
}

pub fn encode_protobuf(req: &ExportLogsServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// Number of LogRecords in a request.
pub fn count_log_records(req: &ExportLogsServiceRequest) -> usize {
    req.resource_logs
        .iter()
        .flat_map(|r| r.scope_logs.iter())
        .map(|s| s.log_records.len())
        .sum()
}

/// A response that reports `rejected` records (or only a warning message when 0).
pub fn partial_success_response(rejected: i64, message: &str) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: message.to_string(),
        }),
    }
}
