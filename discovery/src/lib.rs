//! Stampede's etcd glue, and the only crate that knows etcd's types.
//!
//! With `--etcd URL`, coordinators campaign for leadership on the election
//! `{prefix}/leader` with their advertised gRPC address as the value; the
//! leader keeps its runs under `{prefix}/runs/` and writes only while it
//! still leads (a fenced write); agents register under `{prefix}/agents/`
//! with a lease and find the coordinator as the election's current value.
//! Every lease is kept alive by a task; a coordinator whose lease lapses is
//! told so through its [`Term`] and must stop acting as the leader.

use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Txn, TxnOp,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long one etcd request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("--etcd `{0}`: {1}")]
    BadConfig(String, String),
    #[error("cannot reach etcd at {endpoints}: {message}; is etcd running there? (see --etcd)")]
    Unreachable { endpoints: String, message: String },
    #[error("etcd {action} of `{key}` failed: {message}")]
    Etcd { action: &'static str, key: String, message: String },
    #[error("this coordinator no longer leads (its election key `{0}` is gone); another coordinator has taken over")]
    NotLeader(String),
}

type Result<T> = std::result::Result<T, DiscoveryError>;

/// Where etcd is and how Stampede uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://host:port` URLs of the etcd members.
    pub endpoints: Vec<String>,
    /// Key prefix for everything Stampede keeps in etcd (several Stampede
    /// installations can share one etcd with different prefixes).
    pub prefix: String,
    /// Seconds a lease (a coordinator's leadership, an agent's
    /// registration) outlives its holder.
    pub lease_ttl_s: i64,
}

pub const DEFAULT_PREFIX: &str = "/stampede";
pub const DEFAULT_LEASE_TTL_S: i64 = 5;

impl EtcdConfig {
    /// Parses `--etcd`: one or more comma-separated `host:port` or
    /// `http://host:port`.
    pub fn parse(urls: &str, prefix: &str, lease_ttl_s: i64) -> Result<Self> {
        let bad = |why: &str| DiscoveryError::BadConfig(urls.to_string(), why.to_string());
        let mut endpoints = Vec::new();
        for part in urls.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let url = if part.contains("://") { part.to_string() } else { format!("http://{part}") };
            if url.starts_with("https://") {
                return Err(bad("TLS to etcd is not supported; give an http:// address on a trusted network"));
            }
            let rest =
                url.strip_prefix("http://").ok_or_else(|| bad("an address must be host:port or http://host:port"))?;
            let authority = rest.trim_end_matches('/');
            let port_ok =
                authority.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok || authority.contains('/') {
                return Err(bad(&format!("`{part}` is not host:port (etcd's client port is usually 2379)")));
            }
            endpoints.push(format!("http://{authority}"));
        }
        if endpoints.is_empty() {
            return Err(bad("no address given"));
        }
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.len() < 2 {
            return Err(DiscoveryError::BadConfig(
                prefix.to_string(),
                "the key prefix must start with `/` and not end with one, like /stampede".to_string(),
            ));
        }
        if !(2..=3600).contains(&lease_ttl_s) {
            return Err(bad("the lease time-to-live must be between 2 and 3600 seconds"));
        }
        Ok(Self { endpoints, prefix: prefix.to_string(), lease_ttl_s })
    }

    /// The election every coordinator of this installation campaigns in.
    pub fn election_name(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    pub fn agent_key(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}", self.prefix)
    }

    fn shown(&self) -> String {
        self.endpoints.join(",")
    }
}

/// The right to write as the leader: the election key this coordinator
/// holds and the revision it was created at. A write made with a fence
/// succeeds only while that key still exists unchanged.
#[derive(Debug, Clone)]
pub struct Fence {
    key: Vec<u8>,
    create_revision: i64,
}

impl Fence {
    /// The etcd revision at which this leadership began: later leaders
    /// have higher ones, so it serves as a term number for other stores.
    pub fn term(&self) -> i64 {
        self.create_revision
    }
}

/// A connection to etcd.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    config: EtcdConfig,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("endpoints", &self.config.endpoints).finish()
    }
}

fn failed<'a>(action: &'static str, key: &'a str) -> impl FnOnce(etcd_client::Error) -> DiscoveryError + 'a {
    move |e| DiscoveryError::Etcd { action, key: key.to_string(), message: e.to_string() }
}

async fn timed<T>(
    action: &'static str,
    key: &str,
    call: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result.map_err(failed(action, key)),
        Err(_) => Err(DiscoveryError::Etcd {
            action,
            key: key.to_string(),
            message: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        }),
    }
}

impl Etcd {
    /// Connects and checks that etcd answers.
    pub async fn connect(config: &EtcdConfig) -> Result<Self> {
        let unreachable = |message: String| DiscoveryError::Unreachable { endpoints: config.shown(), message };
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
        let client = tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(&config.endpoints, Some(options)))
            .await
            .map_err(|_| unreachable("no answer within 5s".to_string()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let etcd = Self { client, config: config.clone() };
        let probe = GetOptions::new().with_keys_only().with_limit(1);
        let mut kv = etcd.client.kv_client();
        tokio::time::timeout(REQUEST_TIMEOUT, kv.get(config.prefix.as_bytes(), Some(probe)))
            .await
            .map_err(|_| unreachable("no answer within 5s".to_string()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(etcd)
    }

    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// The value (gRPC URL) of the current leader, if there is one.
    pub async fn leader(&self) -> Result<Option<String>> {
        let name = self.config.election_name();
        // Read the election's keys directly: the lowest creation revision
        // leads, exactly as etcd's election service decides.
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(etcd_client::SortTarget::Create, etcd_client::SortOrder::Ascend)
            .with_limit(1);
        let prefix = format!("{name}/");
        let mut kv = self.client.kv_client();
        let response = timed("read", &name, kv.get(prefix.as_bytes(), Some(options))).await?;
        Ok(response.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut kv = self.client.kv_client();
        let response = timed("read", key, kv.get(key.as_bytes(), None)).await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every key under `prefix` with its value, in key order.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_prefix();
        let response = timed("read", prefix, kv.get(prefix.as_bytes(), Some(options))).await?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec()))
            .collect())
    }

    /// Writes `key`; with a fence, only while the fence holds.
    pub async fn put(&self, key: &str, value: Vec<u8>, fence: Option<&Fence>) -> Result<()> {
        self.fenced("write", key, TxnOp::put(key, value, None), fence).await
    }

    pub async fn delete(&self, key: &str, fence: Option<&Fence>) -> Result<()> {
        self.fenced("delete", key, TxnOp::delete(key, None), fence).await
    }

    /// Deletes every key under `prefix`; with a fence, only while it holds.
    pub async fn delete_prefix(&self, prefix: &str, fence: Option<&Fence>) -> Result<()> {
        self.fenced("delete", prefix, TxnOp::delete(prefix, Some(DeleteOptions::new().with_prefix())), fence).await
    }

    /// Compacts etcd's history up to the current revision, so that the
    /// space of deleted and overwritten values can be reused. A compaction
    /// that another client made first is no error.
    pub async fn compact(&self) -> Result<()> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_keys_only().with_limit(1);
        let response = timed("read", &self.config.prefix, kv.get(self.config.prefix.as_bytes(), Some(options))).await?;
        let Some(revision) = response.header().map(|h| h.revision()) else { return Ok(()) };
        let result = timed("compact", &self.config.prefix, kv.compact(revision, Some(CompactionOptions::new()))).await;
        match result {
            Err(DiscoveryError::Etcd { message, .. }) if message.contains("compacted") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn fenced(&self, action: &'static str, key: &str, op: TxnOp, fence: Option<&Fence>) -> Result<()> {
        let mut txn = Txn::new();
        if let Some(fence) = fence {
            txn = txn.when([Compare::create_revision(fence.key.clone(), CompareOp::Equal, fence.create_revision)]);
        }
        let mut kv = self.client.kv_client();
        let response = timed(action, key, kv.txn(txn.and_then([op]))).await?;
        match fence {
            Some(fence) if !response.succeeded() => {
                Err(DiscoveryError::NotLeader(String::from_utf8_lossy(&fence.key).into_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Registers an agent under `{prefix}/agents/{id}` with a lease that a
    /// background task keeps alive (and renews after etcd comes back) until
    /// the registration is dropped.
    pub async fn register_agent(&self, agent_id: &str, info: &str) -> Result<Registration> {
        let key = self.config.agent_key(agent_id);
        let lease = self.grant(&key).await?;
        self.put_leased(&key, info, lease).await?;
        let etcd = self.clone();
        let info = info.to_string();
        let task = tokio::spawn(async move {
            let mut lease = lease;
            loop {
                let why = etcd.keep_lease(lease).await;
                tracing::warn!(key = %key, %why, "agent registration lapsed; registering again");
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let Ok(renewed) = etcd.grant(&key).await else { continue };
                    if etcd.put_leased(&key, &info, renewed).await.is_ok() {
                        lease = renewed;
                        break;
                    }
                }
            }
        });
        Ok(Registration { task })
    }

    /// Writes `key` attached to `lease`: it goes when the lease does.
    async fn put_leased(&self, key: &str, value: &str, lease: i64) -> Result<()> {
        let mut kv = self.client.kv_client();
        let options = etcd_client::PutOptions::new().with_lease(lease);
        timed("write", key, kv.put(key.as_bytes(), value.as_bytes(), Some(options))).await.map(|_| ())
    }

    async fn grant(&self, key: &str) -> Result<i64> {
        let mut lease = self.client.lease_client();
        Ok(timed("lease grant for", key, lease.grant(self.config.lease_ttl_s, None)).await?.id())
    }

    /// Keeps `lease` alive; returns why it could not any more.
    async fn keep_lease(&self, lease: i64) -> String {
        let ttl = Duration::from_secs(self.config.lease_ttl_s as u64);
        let mut deadline = tokio::time::Instant::now() + ttl;
        let mut client = self.client.lease_client();
        let mut stream = None;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return format!("no keep-alive reached etcd for {}s", ttl.as_secs());
            }
            if stream.is_none() {
                match tokio::time::timeout(REQUEST_TIMEOUT, client.keep_alive(lease)).await {
                    Ok(Ok(pair)) => stream = Some(pair),
                    _ => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                }
            }
            let Some((keeper, responses)) = stream.as_mut() else { continue };
            let answer = async {
                keeper.keep_alive().await?;
                responses.message().await
            };
            match tokio::time::timeout(REQUEST_TIMEOUT.min(ttl), answer).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => {
                    deadline = tokio::time::Instant::now() + Duration::from_secs(response.ttl() as u64);
                    tokio::time::sleep(ttl / 4).await;
                }
                Ok(Ok(Some(_))) => return "etcd says the lease has expired".to_string(),
                _ => {
                    stream = None;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }

    /// Keeps `lease` alive from a thread with its own runtime and its own
    /// connection, so that a busy coordinator (whose engine waits on etcd
    /// writes) cannot starve its leadership. Dropping the returned sender
    /// stops it; the receiver fires when the lease could not be kept.
    fn keep_on_own_thread(&self, lease: i64, name: &str) -> Result<(oneshot::Receiver<String>, oneshot::Sender<()>)> {
        let (lost_tx, lost) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let spawned = std::thread::Builder::new().name("etcd-lease".to_string()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = lost_tx.send(format!("cannot start the lease keeper: {error}"));
                    return;
                }
            };
            runtime.block_on(async move {
                let keep = async {
                    match Etcd::connect(&config).await {
                        Ok(etcd) => etcd.keep_lease(lease).await,
                        Err(error) => error.to_string(),
                    }
                };
                tokio::select! {
                    why = keep => { let _ = lost_tx.send(why); }
                    _ = stopped => {}
                }
            });
        });
        spawned.map_err(|e| DiscoveryError::Etcd {
            action: "keep the lease of",
            key: name.to_string(),
            message: format!("cannot start a thread: {e}"),
        })?;
        Ok((lost, stop))
    }

    /// Campaigns with `value` (this coordinator's gRPC URL) and returns once
    /// this coordinator leads. Waiting here is being a standby.
    pub async fn campaign(&self, value: &str) -> Result<Term> {
        let name = self.config.election_name();
        let lease = self.grant(&name).await?;
        let (mut lost, keeper) = self.keep_on_own_thread(lease, &name)?;
        let mut election = self.client.election_client();
        // No timeout: a standby waits here for as long as the leader lives.
        // But if its own lease lapses meanwhile (etcd unreachable for longer
        // than the TTL), its candidacy is gone with it: say so and stop
        // rather than wait for an election it no longer stands in.
        let response = tokio::select! {
            response = election.campaign(name.as_bytes(), value.as_bytes(), lease) => match response {
                Ok(response) => response,
                Err(e) => return Err(failed("campaign in", &name)(e)),
            },
            why = &mut lost => {
                let why = why.unwrap_or_else(|_| "the lease keeper stopped".to_string());
                return Err(DiscoveryError::Etcd {
                    action: "campaign in",
                    key: name,
                    message: format!("the candidacy's lease lapsed while waiting ({why}); start the coordinator again"),
                });
            }
        };
        let Some(leader) = response.leader() else {
            return Err(DiscoveryError::Etcd {
                action: "campaign in",
                key: name,
                message: "etcd answered without a leader key".to_string(),
            });
        };
        let fence = Fence { key: leader.key().to_vec(), create_revision: leader.rev() };
        Ok(Term { fence, lost, keeper: Some(keeper), lease, client: self.client.clone() })
    }
}

/// An agent's registration; dropping it stops renewing the lease.
#[derive(Debug)]
pub struct Registration {
    task: JoinHandle<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// This coordinator's leadership, from winning the election until `lost`
/// fires (the lease lapsed) or the term is dropped.
pub struct Term {
    pub fence: Fence,
    /// Fires with the reason when the lease behind the leadership lapses.
    pub lost: oneshot::Receiver<String>,
    /// Dropping it stops the lease keeper's thread.
    keeper: Option<oneshot::Sender<()>>,
    lease: i64,
    client: Client,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term").field("fence", &self.fence).finish()
    }
}

impl Term {
    /// Gives the leadership up at once (on a clean shutdown), so a standby
    /// need not wait for the lease to lapse.
    pub async fn resign(mut self) {
        self.keeper.take();
        let mut lease = self.client.lease_client();
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, lease.revoke(self.lease)).await;
        self.lease = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_normalised() {
        let config = EtcdConfig::parse("127.0.0.1:2379, http://10.0.0.2:2379/", DEFAULT_PREFIX, 5).expect("valid");
        assert_eq!(config.endpoints, vec!["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(config.election_name(), "/stampede/leader");
        assert_eq!(config.agent_key("a-1"), "/stampede/agents/a-1");
        for (urls, prefix, ttl, says) in [
            ("", "/s", 5, "no address"),
            ("etcd", "/s", 5, "not host:port"),
            ("https://e:2379", "/s", 5, "TLS"),
            ("e:2379", "stampede", 5, "must start with `/`"),
            ("e:2379", "/s", 1, "between 2 and 3600"),
        ] {
            let error = EtcdConfig::parse(urls, prefix, ttl).expect_err(urls).to_string();
            assert!(error.contains(says), "{urls}: {error}");
        }
    }
}
