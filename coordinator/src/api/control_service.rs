//! `ControlService`: what `stampede submit`, `runs`, `report` and `agents`
//! call.

use std::pin::Pin;

use futures::Stream;
use stampede_proto::v1 as pb;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{convert, status};
use crate::engine::{EngineHandle, Event};

pub struct ControlService {
    engine: EngineHandle,
}

impl ControlService {
    pub fn new(engine: EngineHandle) -> Self {
        Self { engine }
    }
}

/// Scenario texts larger than this are refused before parsing.
const MAX_SCENARIO_BYTES: usize = 1024 * 1024;

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRunResponse, Status>> + Send>>;
type LiveStream = Pin<Box<dyn Stream<Item = Result<pb::LiveEvent, Status>> + Send>>;
type LogStream = Pin<Box<dyn Stream<Item = Result<pb::IntervalLogChunk, Status>> + Send>>;

/// The largest chunk of an interval log in one message.
const LOG_CHUNK_BYTES: usize = 1024 * 1024;

#[tonic::async_trait]
impl pb::control_service_server::ControlService for ControlService {
    type WatchRunStream = WatchStream;
    type GetIntervalLogStream = LogStream;
    type WatchLiveStream = LiveStream;

    async fn submit_run(
        &self,
        request: Request<pb::SubmitRunRequest>,
    ) -> Result<Response<pb::SubmitRunResponse>, Status> {
        let request = request.into_inner();
        if request.scenario_yaml.len() > MAX_SCENARIO_BYTES {
            return Err(Status::invalid_argument("the scenario is larger than 1 MiB"));
        }
        let run_id = self
            .engine
            .ask(|reply| Event::Submit { scenario_yaml: request.scenario_yaml, agents: request.agents, reply })
            .await
            .map_err(status)?
            .map_err(status)?;
        Ok(Response::new(pb::SubmitRunResponse { run_id }))
    }

    async fn watch_run(&self, request: Request<pb::WatchRunRequest>) -> Result<Response<Self::WatchRunStream>, Status> {
        let run_id = request.into_inner().run_id;
        let updates = self.engine.ask(|reply| Event::Watch { run_id, reply }).await.map_err(status)?.map_err(status)?;
        let stream = ReceiverStream::new(updates).map(|update| Ok(convert::watch_update(update)));
        Ok(Response::new(Box::pin(stream) as WatchStream))
    }

    async fn watch_live(
        &self,
        request: Request<pb::WatchLiveRequest>,
    ) -> Result<Response<Self::WatchLiveStream>, Status> {
        let run_id = Some(request.into_inner().run_id);
        let feed = self.engine.ask(|reply| Event::Live { run_id, reply }).await.map_err(status)?.map_err(status)?;
        // The runs' and agents' lists are the web page's; a run's viewer
        // here needs its own events only.
        let stream = ReceiverStream::new(feed)
            .filter(|e| matches!(e.name, "windows" | "status" | "end"))
            .map(|e| Ok(pb::LiveEvent { name: e.name.to_string(), data_json: e.data.to_string() }));
        Ok(Response::new(Box::pin(stream) as LiveStream))
    }

    async fn get_run(&self, request: Request<pb::GetRunRequest>) -> Result<Response<pb::GetRunResponse>, Status> {
        let run_id = request.into_inner().run_id;
        let view = self.engine.ask(|reply| Event::GetRun { run_id, reply }).await.map_err(status)?.map_err(status)?;
        Ok(Response::new(pb::GetRunResponse {
            run: Some(convert::run_summary(&view)),
            report_json: view.report_json.unwrap_or_default(),
            report_text: view.report_text.unwrap_or_default(),
        }))
    }

    async fn get_interval_log(
        &self,
        request: Request<pb::GetIntervalLogRequest>,
    ) -> Result<Response<Self::GetIntervalLogStream>, Status> {
        let run_id = request.into_inner().run_id;
        let source =
            self.engine.ask(|reply| Event::IntervalLog { run_id, reply }).await.map_err(status)?.map_err(status)?;
        // Reading and merging a long run's reports takes a while: not on
        // the runtime's threads.
        let log = tokio::task::spawn_blocking(move || source.write())
            .await
            .map_err(|e| Status::internal(format!("the interval log could not be written: {e}")))?
            .map_err(Status::failed_precondition)?;
        let chunks: Vec<Result<pb::IntervalLogChunk, Status>> = log
            .into_bytes()
            .chunks(LOG_CHUNK_BYTES)
            .map(|chunk| Ok(pb::IntervalLogChunk { data: chunk.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks)) as LogStream))
    }

    async fn list_runs(&self, request: Request<pb::ListRunsRequest>) -> Result<Response<pb::ListRunsResponse>, Status> {
        let scenario = Some(request.into_inner().scenario).filter(|name| !name.is_empty());
        let runs = self.engine.ask(|reply| Event::ListRuns { scenario, reply }).await.map_err(status)?;
        Ok(Response::new(pb::ListRunsResponse { runs: runs.iter().map(convert::run_summary).collect() }))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let run_id = request.into_inner().run_id;
        let state =
            self.engine.ask(|reply| Event::CancelRun { run_id, reply }).await.map_err(status)?.map_err(status)?;
        Ok(Response::new(pb::CancelRunResponse { state: state.as_str().to_string() }))
    }

    async fn list_agents(
        &self,
        _request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let agents = self.engine.ask(|reply| Event::ListAgents { reply }).await.map_err(status)?;
        Ok(Response::new(pb::ListAgentsResponse { agents: agents.into_iter().map(convert::agent_summary).collect() }))
    }
}
