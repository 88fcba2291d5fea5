//! The driver for the `redis_cluster` target kind: a Redis Cluster through
//! the redis crate's cluster client, which keeps its own copy of the slot
//! map and follows MOVED and ASK redirections. The endpoints are seed nodes.
//!
//! Node identity: when a connection opens, the driver reads the cluster's
//! slot map (`CLUSTER SLOTS`) and each master's `INFO server` (its run id,
//! named like a single Redis server's and renamed through the scenario's
//! node map). Every operation is then counted against the master that owns
//! its key's hash slot. A connection holds a socket to every master, so it
//! counts as a connection on each.
//!
//! The workloads' commands are the RESP driver's (`resp::Encoder`); a batch
//! (the closed model's pipeline) is sent as concurrent requests, which the
//! cluster client writes to each node's socket together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection as Client;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::io::tcp::TcpSettings;
use redis::{Value, from_redis_value_ref};

use super::resp::{
    CONNECT_TIMEOUT, Encoder, Phase, RespAddress, RespConfig, classify, interpret, node_from_info, over_range,
    summarize_value,
};
use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Part, Progress};
use crate::workloads::{Action, Operation};

/// Hash slots of a Redis Cluster.
pub const SLOTS: u32 = 16384;

/// How long a slot map read for one connection serves the next ones.
const TOPOLOGY_REUSE: Duration = Duration::from_secs(1);

/// CRC16 with the XMODEM parameters (polynomial 0x1021, initial value 0),
/// the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash slot of a key: of its hash tag when it has one (the text
/// between the first `{` and the next `}`, when not empty), else of the
/// whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|b| *b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    (u32::from(crc16(hashed)) % SLOTS) as u16
}

/// Which master owns which hash slots.
#[derive(Debug)]
pub struct Topology {
    /// `(first slot, last slot, index into nodes)`, sorted by first slot.
    ranges: Vec<(u16, u16, usize)>,
    /// The masters' names (`host:port` until named by their run ids).
    nodes: Vec<Arc<str>>,
    /// The masters' addresses, in the order of `nodes`.
    addresses: Vec<(String, u16)>,
}

impl Topology {
    /// The master that owns `key`'s slot.
    pub fn node_of(&self, key: &[u8]) -> Option<&Arc<str>> {
        let slot = key_slot(key);
        let at = self.ranges.partition_point(|(first, _, _)| *first <= slot).checked_sub(1)?;
        let (_, last, node) = self.ranges[at];
        (slot <= last).then(|| &self.nodes[node])
    }

    /// Builds the map from a `CLUSTER SLOTS` reply, masters named by their
    /// address. `seed_host` stands for an empty host (a node that does not
    /// know its own address).
    pub fn from_slots(reply: &Value, seed_host: &str) -> Result<Topology, TopologyError> {
        let Value::Array(entries) = reply else { return Err(TopologyError::Reply(format!("{reply:?}"))) };
        let mut ranges = Vec::with_capacity(entries.len());
        let mut masters: Vec<(String, u16)> = Vec::new();
        for entry in entries {
            let parsed = (|| {
                let Value::Array(fields) = entry else { return None };
                let first: u16 = from_redis_value_ref(fields.first()?).ok()?;
                let last: u16 = from_redis_value_ref(fields.get(1)?).ok()?;
                let Value::Array(master) = fields.get(2)? else { return None };
                let host: String = from_redis_value_ref(master.first()?).ok()?;
                let port: u16 = from_redis_value_ref(master.get(1)?).ok()?;
                Some((first, last, host, port))
            })();
            let Some((first, last, host, port)) = parsed else {
                return Err(TopologyError::Entry(format!("{entry:?}")));
            };
            let host = if host.is_empty() { seed_host.to_string() } else { host };
            let index = match masters.iter().position(|m| *m == (host.clone(), port)) {
                Some(index) => index,
                None => {
                    masters.push((host, port));
                    masters.len() - 1
                }
            };
            ranges.push((first, last, index));
        }
        ranges.sort_unstable();
        let covered: u32 = ranges.iter().map(|(first, last, _)| u32::from(last.saturating_sub(*first)) + 1).sum();
        if covered != SLOTS {
            return Err(TopologyError::Incomplete { covered });
        }
        let nodes = masters.iter().map(|(host, port)| format!("{host}:{port}").into()).collect();
        Ok(Topology { ranges, nodes, addresses: masters })
    }
}

/// Classifies the error of a cluster client's first connection. The redis
/// crate folds the seeds' errors into one `Io` error that keeps only their
/// text, so a seed that never answered is recognised by it.
fn classify_initial(error: &redis::RedisError) -> ErrorKind {
    let timed_out = error.detail().is_some_and(|detail| detail.contains("timed out"));
    if timed_out { ErrorKind::Timeout } else { classify(error) }
}

/// A `CLUSTER SLOTS` reply that is not a whole slot map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("CLUSTER SLOTS replied {0}")]
    Reply(String),
    #[error("unexpected CLUSTER SLOTS entry {0}")]
    Entry(String),
    #[error(
        "the cluster's slot map covers {covered} of {SLOTS} hash slots; finish setting the cluster up \
         (for example `redis-cli --cluster create ...`) and check `CLUSTER INFO` says cluster_state:ok"
    )]
    Incomplete { covered: u32 },
}

pub struct ClusterDriver {
    config: Arc<RespConfig>,
    /// The scenario's endpoints, tried in turn as seeds.
    seeds: Vec<String>,
    topology: tokio::sync::Mutex<Option<(Instant, Arc<Topology>)>>,
}

impl ClusterDriver {
    pub fn new(config: RespConfig, seeds: &[String]) -> Self {
        Self { config: Arc::new(config), seeds: seeds.to_vec(), topology: tokio::sync::Mutex::new(None) }
    }

    /// The slot map with every master's name, read through `client` unless
    /// a recent one is at hand.
    async fn topology(&self, client: &mut Client, seed: &RespAddress) -> Result<Arc<Topology>, DriverError> {
        let endpoint = &seed.shown;
        let mut cached = self.topology.lock().await;
        if let Some((read, topology)) = &*cached
            && read.elapsed() < TOPOLOGY_REUSE
        {
            return Ok(Arc::clone(topology));
        }
        let failed = |what: &str, e: &redis::RedisError| {
            DriverError::new(classify(e), format!("{what} through the cluster client (seed {endpoint}): {e}"))
        };
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        let reply = client
            .route_command(slots, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
            .await
            .map_err(|e| failed("CLUSTER SLOTS", &e))?;
        let seed_host = seed.address.rsplit_once(':').map_or(seed.address.as_str(), |(host, _)| host);
        let mut topology = Topology::from_slots(&reply, seed_host)
            .map_err(|error| DriverError::new(ErrorKind::Server, format!("{endpoint}: {error}")))?;
        // Name each master by its run id, as a single Redis server is named.
        for (node, (host, port)) in topology.nodes.iter_mut().zip(&topology.addresses) {
            let mut info = redis::cmd("INFO");
            info.arg("server");
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
            let reply = client.route_command(info, routing).await.map_err(|e| failed("INFO server", &e))?;
            let text: String = from_redis_value_ref(&reply).unwrap_or_default();
            if let Some(name) = node_from_info(&text) {
                *node = name.into();
            }
        }
        let topology = Arc::new(topology);
        *cached = Some((Instant::now(), Arc::clone(&topology)));
        Ok(topology)
    }

    /// Runs `action(n)` for every number of the agent's range, once for
    /// the whole cluster.
    async fn over_range(
        &self,
        part: &Part,
        action: fn(u64) -> Action,
        progress: &Progress,
    ) -> Result<u64, DriverError> {
        let Some(seed) = self.seeds.first() else { return Ok(0) };
        let mut connection = self.connect(seed).await?;
        over_range(&mut connection, part, action, progress).await
    }
}

impl Driver for ClusterDriver {
    type Connection = ClusterConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self::new(RespConfig::build(spec)?, spec.endpoints))
    }

    fn notes(&self) -> Vec<String> {
        self.config.note.iter().cloned().collect()
    }

    async fn connect(&self, endpoint: &str) -> Result<ClusterConnection, DriverError> {
        // The endpoint this connection was given first, then the others.
        let first = RespAddress::parse(endpoint);
        let seeds = std::iter::once(endpoint)
            .chain(self.seeds.iter().map(String::as_str).filter(|s| *s != endpoint))
            .map(|seed| RespAddress::parse(seed).connection_info())
            .collect::<Result<Vec<_>, _>>();
        let endpoint = first.shown.as_str();
        let attempt = async {
            let seeds = seeds
                .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{endpoint}`: {e}")))?;
            let mut builder = ClusterClientBuilder::new(seeds);
            // Nodes found through the slot map are reached with the same credentials.
            if let Some(password) = &first.password {
                builder = builder.password(password.clone());
            }
            if let Some(user) = &first.user {
                builder = builder.username(user.clone());
            }
            let client = builder
                .connection_timeout(CONNECT_TIMEOUT)
                // The runner times operations out itself; a dead node should
                // surface as errors, not as minutes of retries.
                .retries(2)
                .tcp_settings(TcpSettings::default().set_nodelay(true))
                .build()
                .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{endpoint}`: {e}")))?;
            let mut client = client.get_async_connection().await.map_err(|e| {
                DriverError::new(
                    classify_initial(&e),
                    format!(
                        "cannot connect to the Redis Cluster at {endpoint}: {e} (a single Redis server is \
                         `kind: redis`)"
                    ),
                )
            })?;
            let topology = self.topology(&mut client, &first).await?;
            Ok::<_, DriverError>((client, topology))
        };
        let (client, topology) = tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await.map_err(|_| {
            DriverError::new(ErrorKind::Timeout, format!("connecting to the Redis Cluster at {endpoint} took over 10s"))
        })??;
        Ok(ClusterConnection { client, topology, encoder: Encoder::new(&self.config) })
    }

    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let Some(seed) = endpoints.first() else { return Ok(Vec::new()) };
        let connection = self.connect(seed).await?;
        let masters: Vec<&str> = connection.topology.nodes.iter().map(|n| &**n).collect();
        let mut notes = vec![format!(
            "redis_cluster: {} masters ({}); each operation is counted against the master that owns its key's hash \
             slot, from the slot map read when its connection opened",
            masters.len(),
            masters.join(", ")
        )];
        if self.config.preload {
            progress.begin("preload", "keys", part.key_end.saturating_sub(part.key_start));
            let keys = self.over_range(part, Action::Set, progress).await?;
            tracing::info!(keys, "preloaded the key range");
            notes.push("keys preloaded before the run".to_string());
        }
        Ok(notes)
    }

    async fn teardown(
        &self,
        _endpoints: &[String],
        part: &Part,
        progress: &Progress,
    ) -> Result<Vec<String>, DriverError> {
        if !self.config.cleanup {
            return Ok(Vec::new());
        }
        progress.begin("cleanup", "keys", part.key_end.saturating_sub(part.key_start));
        self.over_range(part, Action::Delete, progress).await?;
        Ok(vec!["keys deleted after the run".to_string()])
    }
}

/// One round of an operation's commands: the node that owns its key, the
/// replies, the bytes of the commands and the time encoding took.
struct Round {
    node: Option<Arc<str>>,
    replies: Result<Vec<Value>, DriverError>,
    sent: u32,
    encode_ns: Option<u32>,
}

/// A cluster client (a socket to every master) with the slot map it
/// attributes operations by.
#[derive(Clone)]
pub struct ClusterConnection {
    client: Client,
    topology: Arc<Topology>,
    encoder: Encoder,
}

impl ClusterConnection {
    /// Sends the commands of one phase of an operation; returns the node
    /// that owns its (first) key and the replies.
    async fn round(&mut self, action: Action, phase: Phase) -> Round {
        let mut commands: Vec<redis::Cmd> = Vec::with_capacity(2);
        let mut node = None;
        let topology = &self.topology;
        let mut sent = 0;
        self.encoder.commands(action, phase, &mut |args| {
            sent += super::resp::wire::command_len(args);
            if node.is_none() {
                node = args.get(1).and_then(|key| topology.node_of(key)).cloned();
            }
            let mut command = redis::Cmd::new();
            for arg in args {
                command.arg(*arg);
            }
            commands.push(command);
        });
        let replies = match commands.len() {
            0 => Ok(Vec::new()),
            1 => self.client.req_packed_command(&commands[0]).await.map(|value| vec![value]),
            n => {
                // The commands of one operation share a key, so one node.
                let mut pipeline = redis::pipe();
                for command in commands {
                    pipeline.add_command(command);
                }
                self.client.req_packed_commands(&pipeline, 0, n).await
            }
        };
        let (replies, encode_ns) = match self.encoder.take_encoded() {
            Some(Err(message)) => (Err(DriverError::new(ErrorKind::Protocol, message)), None),
            encoded => {
                (replies.map_err(|e| DriverError::new(classify(&e), e.to_string())), encoded.and_then(Result::ok))
            }
        };
        Round { node, replies, sent: sent as u32, encode_ns }
    }

    async fn run(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        let action = operation.action;
        let Round { node, replies, sent, encode_ns } = self.round(action, Phase::Main).await;
        let at = |error: DriverError| match &node {
            Some(node) => error.at(Arc::clone(node)),
            None => error,
        };
        let replies = replies.map_err(at)?;
        let summaries: Vec<_> = replies.iter().map(|value| summarize_value(value, self.encoder.codec())).collect();
        let mut done = interpret(action, &summaries).map_err(at)?;
        done.sent = sent;
        done.encode_ns = encode_ns;
        if done.hit == Some(false) {
            // A cache read that missed fills the key.
            let fill = self.round(action, Phase::Fill).await;
            let filled: Vec<_> = fill.replies.map_err(at)?.iter().map(|value| summarize_value(value, None)).collect();
            if let Some(error) = filled.iter().find_map(|s| s.error.clone()) {
                return Err(at(DriverError::new(ErrorKind::Server, error)));
            }
            done.sent += fill.sent;
            done.received += filled.iter().map(|s| s.bytes).sum::<u32>();
        }
        done.node = node.clone();
        Ok(done)
    }
}

impl Connection for ClusterConnection {
    fn node(&self) -> &str {
        self.topology.nodes.first().map_or("cluster", |n| n)
    }

    fn nodes(&self) -> &[Arc<str>] {
        &self.topology.nodes
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        self.run(operation).await
    }

    async fn execute_batch(&mut self, operations: &[Operation], results: &mut Vec<Result<Done, DriverError>>) {
        let requests = operations.iter().map(|operation| {
            let mut connection = self.clone();
            async move { connection.run(operation).await }
        });
        results.extend(futures::future::join_all(requests).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_specification() {
        // The test vector of Redis Cluster's specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn hash_tags_pick_the_hashed_part() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"), "an empty tag hashes the whole key");
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo"), 12182, "as CLUSTER KEYSLOT foo answers");
    }

    fn entry(first: i64, last: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![Value::BulkString(host.as_bytes().to_vec()), Value::Int(port)]),
        ])
    }

    #[test]
    fn slot_map_names_the_owner_of_every_key() {
        let reply = Value::Array(vec![
            entry(10923, 16383, "10.0.0.3", 7002),
            entry(0, 5460, "", 7000),
            entry(5461, 10922, "10.0.0.2", 7001),
        ]);
        let topology = Topology::from_slots(&reply, "10.0.0.1").expect("map");
        assert_eq!(topology.nodes.len(), 3);
        assert_eq!(topology.node_of(b"foo").map(|n| &**n), Some("10.0.0.3:7002"), "slot 12182");
        assert_eq!(topology.node_of(b"hello").map(|n| &**n), Some("10.0.0.1:7000"), "slot 866, empty host");
        assert_eq!(topology.node_of(b"c").map(|n| &**n), Some("10.0.0.2:7001"), "slot 7365");
    }

    #[test]
    fn an_incomplete_slot_map_is_refused_with_what_to_do() {
        let reply = Value::Array(vec![entry(0, 5460, "h", 1), entry(5461, 10922, "h", 2)]);
        let error = Topology::from_slots(&reply, "h").expect_err("incomplete").to_string();
        assert!(error.contains("covers 10923 of 16384"), "{error}");
        assert!(error.contains("redis-cli --cluster create"), "{error}");
        let error = Topology::from_slots(&Value::Array(vec![Value::Int(1)]), "h").expect_err("bad").to_string();
        assert!(error.contains("unexpected CLUSTER SLOTS entry"), "{error}");
    }

    /// The shared conformance checks against a real Redis Cluster of three
    /// masters, with cache reads so that a hit and a miss are told apart.
    /// The driver is given one seed: the cluster client finds the other
    /// masters in the slot map.
    #[tokio::test]
    async fn the_driver_passes_the_conformance_checks_against_a_real_cluster() {
        use crate::drivers::conformance::{self, Operations};
        let cluster = stampede_tests::redis_cluster::RedisCluster::start(3);
        let seed = cluster.addresses[0].clone();
        let scenario = |seed: &str| {
            format!(
                "name: t\nduration: 1s\ntarget:\n  kind: redis_cluster\n  endpoints: [\"{seed}\"]\nworkload:\n  \
                 kind: cache\n  key_prefix: \"conf:\"\n  ttl: 60s\n  keys: 1000\n  value_size: 5B\n"
            )
        };
        const PART: Part = Part { agent_index: 0, key_start: 0, key_end: 1000 };
        let driver: ClusterDriver = conformance::build(&scenario(&seed), &PART);
        let operations = Operations {
            write: Operation { index: 1, action: Action::Set(7) },
            read: Operation { index: 0, action: Action::CacheRead(7) },
            check_read: |done| done.hit == Some(true),
            missing: Operation { index: 0, action: Action::Get(123_456) },
            check_missing: |done| done.hit.is_none(),
        };
        let addresses = cluster.addresses.clone();
        let drop_connections = async move || {
            // Every master closes its clients' connections, as a restart would.
            for address in &addresses {
                let killed = stampede_tests::redis_cluster::integer(address, &["CLIENT", "KILL", "TYPE", "normal"]);
                assert!(killed >= 1, "{address} closed {killed} connections");
            }
        };
        let target = conformance::Target {
            endpoint: seed.clone(),
            url: |a| a.to_string(),
            driver_for: Box::new(move |endpoint| conformance::build(&scenario(endpoint), &PART)),
        };
        conformance::check(&driver, target, operations, drop_connections).await;
        let connection = driver.connect(&seed).await.expect("connect");
        let mut masters: Vec<String> = connection.nodes().iter().map(|n| n.to_string()).collect();
        masters.sort();
        let mut expected: Vec<String> =
            cluster.addresses.iter().map(|a| stampede_tests::redis_cluster::RedisCluster::identity(a)).collect();
        expected.sort();
        assert_eq!(masters, expected, "a cluster connection holds a socket to every master, named by run id");
    }
}
