//! Hostile gRPC input against a real coordinator process: a message over
//! the size limit, a scenario over its own limit, bytes that are not
//! protobuf, and an unknown method each get a status, and the coordinator
//! goes on serving.

use std::time::Duration;

use bytes::{Buf, BufMut};
use stampede_proto::v1 as pb;
use stampede_proto::v1::control_service_client::ControlServiceClient;
use stampede_tests::cluster::CoordinatorBuilder;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends and receives bytes as they are, so that a test can send what no
/// generated client would.
#[derive(Clone, Copy)]
struct RawBytes;

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        *self
    }
    fn decoder(&mut self) -> Self {
        *self
    }
}

async fn raw_call(url: &str, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let channel =
        tonic::transport::Endpoint::from_shared(url.to_string()).expect("url").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(tonic::Request::new(body), tonic::codegen::http::uri::PathAndQuery::from_static(path), RawBytes)
        .await
        .map(tonic::Response::into_inner)
}

#[test]
fn oversized_and_malformed_messages_get_a_status_and_the_coordinator_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorBuilder::new(dir.path()).start();
    let url = coordinator.url.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut client = ControlServiceClient::connect(url.clone())
            .await
            .expect("connect")
            .max_encoding_message_size(64 * 1024 * 1024);

        // Over the 16 MiB message limit: refused while decoding.
        let huge = pb::SubmitRunRequest { scenario_yaml: "#".repeat(20 * 1024 * 1024), agents: 1 };
        let status = client.submit_run(huge).await.expect_err("a 20 MiB message is refused");
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(status.message().contains("message length too large"), "{status:?}");

        // Under the message limit but over the scenario limit.
        let big = pb::SubmitRunRequest { scenario_yaml: "#".repeat(2 * 1024 * 1024), agents: 1 };
        let status = client.submit_run(big).await.expect_err("a 2 MiB scenario is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("larger than 1 MiB"), "{status:?}");

        // Bytes that are not a protobuf message (a field with wire type 7).
        let status = raw_call(&url, "/stampede.v1.ControlService/SubmitRun", vec![0x0f, 0xff, 0xff, 0x01])
            .await
            .expect_err("garbage is refused");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert!(status.message().contains("decode"), "{status:?}");

        // Valid protobuf, but the scenario is not valid UTF-8.
        let status = raw_call(&url, "/stampede.v1.ControlService/SubmitRun", vec![0x0a, 0x02, 0xff, 0xfe])
            .await
            .expect_err("invalid UTF-8 is refused");
        assert_eq!(status.code(), Code::Internal, "{status:?}");

        // A scenario that parses as protobuf but not as a scenario: the
        // error names the line.
        let bad = pb::SubmitRunRequest { scenario_yaml: "name: x\nduration: [\n".to_string(), agents: 1 };
        let status = client.submit_run(bad).await.expect_err("broken YAML is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("line"), "{status:?}");

        // A method that does not exist.
        let status =
            raw_call(&url, "/stampede.v1.ControlService/DropTables", Vec::new()).await.expect_err("no such method");
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

        // The agent stream with garbage as its first message.
        let status = raw_call(&url, "/stampede.v1.AgentService/Session", vec![0xff; 64]).await;
        assert!(status.is_err(), "{status:?}");

        // Still serving.
        let runs = tokio::time::timeout(Duration::from_secs(10), client.list_runs(pb::ListRunsRequest::default()))
            .await
            .expect("answers in time")
            .expect("list runs");
        assert!(runs.into_inner().runs.is_empty(), "no run was created by any of this");
    });
}
