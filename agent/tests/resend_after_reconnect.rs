//! The agent's real session against a scripted coordinator that drops the
//! first session without acknowledging anything: every report comes again
//! on the next session, and the run completes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stampede_agent::AgentConfig;
use stampede_proto::v1 as pb;
use stampede_proto::v1::session_request::Body as In;
use stampede_proto::v1::session_response::Body as Out;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

#[derive(Default)]
struct Script {
    sessions: AtomicU64,
    /// (session, seq) of every interval report received.
    reports: Mutex<Vec<(u64, u64)>>,
    finals: Mutex<Vec<u64>>,
    target: String,
}

struct Fake(Arc<Script>);

fn now_us() -> i64 {
    stampede_agent::session::now_unix_us()
}

type Stream = Pin<Box<dyn futures::Stream<Item = Result<pb::SessionResponse, Status>> + Send>>;

fn assignment(target: &str) -> Out {
    Out::Assignment(pb::Assignment {
        run_id: "run-1".into(),
        scenario_yaml: "name: t\nduration: 4s\ntarget:\n  kind: kv\nload:\n  connections: 2\nworkload:\n  kind: kv\n"
            .into(),
        agent_index: 0,
        agent_count: 1,
        connections: 2,
        rate_per_s: 0.0,
        key_start: 0,
        key_end: 100,
        seed: 1,
        endpoints: vec![target.to_string()],
        first_seq: 0,
        rejoin: false,
        trace_context: Default::default(),
        operations: None,
        operation_counts: vec![],
    })
}

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for Fake {
    type SessionStream = Stream;

    async fn session(&self, request: Request<Streaming<pb::SessionRequest>>) -> Result<Response<Stream>, Status> {
        let script = Arc::clone(&self.0);
        let session = script.sessions.fetch_add(1, Ordering::SeqCst) + 1;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(Ok(message)) = inbound.next().await {
                let reply = match message.body {
                    Some(In::Hello(_)) => {
                        Some(Out::Welcome(pb::Welcome { coordinator_id: "fake".into(), heartbeat_interval_ms: 500 }))
                    }
                    Some(In::Ping(p)) => Some(Out::Pong(pb::Pong {
                        seq: p.seq,
                        agent_time_us: p.agent_time_us,
                        coordinator_time_us: now_us(),
                    })),
                    Some(In::ClockSync(_)) if session == 1 => Some(assignment(&script.target)),
                    Some(In::Ready(r)) => {
                        Some(Out::Start(pb::Start { run_id: r.run_id, start_at_us: now_us() + 200_000 }))
                    }
                    Some(In::IntervalReport(r)) => {
                        let received = {
                            let mut reports = script.reports.lock().expect("lock");
                            reports.push((session, r.seq));
                            reports.len()
                        };
                        // The first session dies after two reports, unacknowledged.
                        if session == 1 && received >= 2 {
                            return;
                        }
                        (session > 1).then_some(Out::Ack(pb::Ack { run_id: r.run_id, seq: r.seq }))
                    }
                    Some(In::FinalReport(f)) => {
                        script.finals.lock().expect("lock").push(f.seq);
                        Some(Out::Ack(pb::Ack { run_id: f.run_id, seq: f.seq }))
                    }
                    _ => None,
                };
                if let Some(body) = reply
                    && tx.send(Ok(pb::SessionResponse { body: Some(body) })).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as Stream))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_reports_are_resent_on_the_next_session() {
    let kv = stampede_kvserver::spawn("127.0.0.1:0".parse().expect("addr"), stampede_kvserver::ServerConfig::default())
        .await
        .expect("kv server");
    let script = Arc::new(Script { target: kv.addr.to_string(), ..Script::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let service = pb::agent_service_server::AgentServiceServer::new(Fake(Arc::clone(&script)));
    tokio::spawn(
        tonic::transport::Server::builder().add_service(service).serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let mut config = AgentConfig::new(format!("http://{addr}"));
    config.agent_id = "resender".into();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(stampede_agent::run_agent(config, async move {
        let _ = stop_rx.await;
    }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while script.finals.lock().expect("lock").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no final report; reports: {:?}", script.reports.lock());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    let _ = agent.await;

    let reports = script.reports.lock().expect("lock").clone();
    let first: Vec<u64> = reports.iter().filter(|(s, _)| *s == 1).map(|(_, q)| *q).collect();
    let later: Vec<u64> = reports.iter().filter(|(s, _)| *s > 1).map(|(_, q)| *q).collect();
    assert_eq!(first, vec![0, 1], "{reports:?}");
    for seq in &first {
        assert!(later.contains(seq), "seq {seq} was not resent: {reports:?}");
    }
    let final_seq = script.finals.lock().expect("lock")[0];
    // Every interval up to the final one reached the coordinator.
    for seq in 0..final_seq {
        assert!(reports.iter().any(|(_, q)| *q == seq), "seq {seq} missing: {reports:?}");
    }
    assert!(script.sessions.load(Ordering::SeqCst) >= 2);
}
