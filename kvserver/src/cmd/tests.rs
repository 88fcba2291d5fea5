//! One test per command (or family), through the same `execute` the server
//! runs: raw arguments in, RESP reply bytes out.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::execute;
use crate::connection::Client;
use crate::{ServerConfig, Shared};

struct Bench {
    shared: Shared,
    client: Client,
}

impl Bench {
    fn new() -> Self {
        Self::with(ServerConfig::default())
    }

    fn with(config: ServerConfig) -> Self {
        let auth = config.requirepass.is_none();
        Self { shared: Shared::new(config, 6380), client: Client::new(1, auth) }
    }

    /// Runs one command written like `SET k v` and returns the raw reply.
    fn run(&mut self, line: &str) -> String {
        let args: Vec<Bytes> = line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        let mut out = BytesMut::new();
        execute(args, &self.shared, &mut self.client, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";

#[test]
fn get_and_set_with_options() {
    let mut b = Bench::new();
    assert_eq!(b.run("GET k"), "$-1\r\n");
    assert_eq!(b.run("SET k v"), "+OK\r\n");
    assert_eq!(b.run("GET k"), "$1\r\nv\r\n");
    assert_eq!(b.run("SET k w NX"), "$-1\r\n");
    assert_eq!(b.run("SET k w XX GET"), "$1\r\nv\r\n");
    assert_eq!(b.run("SET other w XX"), "$-1\r\n");
    assert_eq!(b.run("SET t v EX 100"), "+OK\r\n");
    assert_eq!(b.run("TTL t"), ":100\r\n");
    assert_eq!(b.run("SET t w KEEPTTL"), "+OK\r\n");
    assert_eq!(b.run("TTL t"), ":100\r\n");
    assert_eq!(b.run("SET t v PX 1500"), "+OK\r\n");
    assert_eq!(b.run("PTTL t").trim_start_matches(':').trim().parse::<i64>().map(|v| v > 1400), Ok(true));
    assert_eq!(b.run("SET k v EX 0"), "-ERR invalid expire time in 'set' command\r\n");
    assert_eq!(b.run("SET k v EX x"), NOT_INT);
    assert_eq!(b.run("SET k v NX XX"), "-ERR syntax error\r\n");
    assert_eq!(b.run("SET k v EX 1 PX 1"), "-ERR syntax error\r\n");
    assert_eq!(b.run("SET k"), "-ERR wrong number of arguments for 'set' command\r\n");
    b.run("RPUSH l a");
    assert_eq!(b.run("GET l"), WRONGTYPE);
    assert_eq!(b.run("SET l v GET"), WRONGTYPE);
}

#[test]
fn mget_mset_del_exists() {
    let mut b = Bench::new();
    assert_eq!(b.run("MSET a 1 b 2"), "+OK\r\n");
    assert_eq!(b.run("MSET a"), "-ERR wrong number of arguments for 'mset' command\r\n");
    b.run("RPUSH l x");
    assert_eq!(b.run("MGET a missing l b"), "*4\r\n$1\r\n1\r\n$-1\r\n$-1\r\n$1\r\n2\r\n");
    assert_eq!(b.run("EXISTS a a missing"), ":2\r\n");
    assert_eq!(b.run("DEL a missing l"), ":2\r\n");
    assert_eq!(b.run("EXISTS a l"), ":0\r\n");
}

#[test]
fn incr_family() {
    let mut b = Bench::new();
    assert_eq!(b.run("INCR n"), ":1\r\n");
    assert_eq!(b.run("INCRBY n 10"), ":11\r\n");
    assert_eq!(b.run("DECR n"), ":10\r\n");
    assert_eq!(b.run("DECRBY n 15"), ":-5\r\n");
    assert_eq!(b.run("GET n"), "$2\r\n-5\r\n");
    assert_eq!(b.run("INCRBY n 1.5"), NOT_INT);
    assert_eq!(b.run("INCRBY n 007"), NOT_INT);
    b.run("SET s abc");
    assert_eq!(b.run("INCR s"), NOT_INT);
    b.run("SET big 9223372036854775807");
    assert_eq!(b.run("INCR big"), "-ERR increment or decrement would overflow\r\n");
    assert_eq!(b.run("DECRBY n -9223372036854775808"), "-ERR decrement would overflow\r\n");
    b.run("SET t 1 EX 100");
    b.run("INCR t");
    assert_eq!(b.run("TTL t"), ":100\r\n", "INCR keeps the expiry");
}

#[test]
fn append_and_strlen() {
    let mut b = Bench::new();
    assert_eq!(b.run("APPEND k hello"), ":5\r\n");
    assert_eq!(b.run("APPEND k _world"), ":11\r\n");
    assert_eq!(b.run("STRLEN k"), ":11\r\n");
    assert_eq!(b.run("STRLEN missing"), ":0\r\n");
    b.run("RPUSH l a");
    assert_eq!(b.run("APPEND l x"), WRONGTYPE);
    assert_eq!(b.run("STRLEN l"), WRONGTYPE);
}

#[test]
fn expire_ttl_and_expiry_itself() {
    let mut b = Bench::new();
    assert_eq!(b.run("EXPIRE missing 10"), ":0\r\n");
    assert_eq!(b.run("TTL missing"), ":-2\r\n");
    b.run("SET k v");
    assert_eq!(b.run("TTL k"), ":-1\r\n");
    assert_eq!(b.run("EXPIRE k 10 XX"), ":0\r\n");
    assert_eq!(b.run("EXPIRE k 10 NX"), ":1\r\n");
    assert_eq!(b.run("EXPIRE k 5 GT"), ":0\r\n");
    assert_eq!(b.run("EXPIRE k 20 GT"), ":1\r\n");
    assert_eq!(b.run("TTL k"), ":20\r\n");
    assert_eq!(b.run("PEXPIRE k 50"), ":1\r\n");
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(b.run("GET k"), "$-1\r\n", "expired lazily");
    b.run("SET gone v");
    assert_eq!(b.run("EXPIRE gone -1"), ":1\r\n");
    assert_eq!(b.run("EXISTS gone"), ":0\r\n");
    assert_eq!(b.run("EXPIRE k abc"), NOT_INT);
    b.run("SET swept v PX 10");
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(b.shared.store.sweep_expired(), 1, "and by the sweep");
}

#[test]
fn list_commands() {
    let mut b = Bench::new();
    assert_eq!(b.run("LPUSH l b a"), ":2\r\n");
    assert_eq!(b.run("RPUSH l c d e"), ":5\r\n");
    assert_eq!(b.run("LLEN l"), ":5\r\n");
    assert_eq!(b.run("LRANGE l 0 1"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    assert_eq!(b.run("LRANGE l -2 -1"), "*2\r\n$1\r\nd\r\n$1\r\ne\r\n");
    assert_eq!(b.run("LRANGE l 3 100"), "*2\r\n$1\r\nd\r\n$1\r\ne\r\n");
    assert_eq!(b.run("LRANGE l 4 2"), "*0\r\n");
    assert_eq!(b.run("LPOP l"), "$1\r\na\r\n");
    assert_eq!(b.run("RPOP l 2"), "*2\r\n$1\r\ne\r\n$1\r\nd\r\n");
    assert_eq!(b.run("LTRIM l 1 -1"), "+OK\r\n");
    assert_eq!(b.run("LRANGE l 0 -1"), "*1\r\n$1\r\nc\r\n");
    assert_eq!(b.run("RPOP l"), "$1\r\nc\r\n");
    assert_eq!(b.run("EXISTS l"), ":0\r\n", "an emptied list is removed");
    assert_eq!(b.run("LPOP l"), "$-1\r\n");
    assert_eq!(b.run("LPOP l 3"), "*-1\r\n");
    assert_eq!(b.run("LPOP l -1"), "-ERR value is out of range, must be positive\r\n");
    assert_eq!(b.run("LLEN l"), ":0\r\n");
    b.run("SET s v");
    for line in ["LPUSH s x", "RPOP s", "LRANGE s 0 1", "LTRIM s 0 1", "LLEN s"] {
        assert_eq!(b.run(line), WRONGTYPE, "{line}");
    }
}

#[test]
fn hash_commands() {
    let mut b = Bench::new();
    assert_eq!(b.run("HSET h f1 v1 f2 v2"), ":2\r\n");
    assert_eq!(b.run("HSET h f1 new f3 v3"), ":1\r\n");
    assert_eq!(b.run("HSET h f1"), "-ERR wrong number of arguments for 'hset' command\r\n");
    assert_eq!(b.run("HGET h f1"), "$3\r\nnew\r\n");
    assert_eq!(b.run("HGET h nope"), "$-1\r\n");
    assert_eq!(b.run("HLEN h"), ":3\r\n");
    assert!(b.run("HGETALL h").starts_with("*6\r\n"));
    assert_eq!(b.run("HDEL h f1 f2 nope"), ":2\r\n");
    assert_eq!(b.run("HGETALL h"), "*2\r\n$2\r\nf3\r\n$2\r\nv3\r\n");
    assert_eq!(b.run("HDEL h f3"), ":1\r\n");
    assert_eq!(b.run("EXISTS h"), ":0\r\n");
    b.run("SET s v");
    for line in ["HSET s a b", "HGET s a", "HGETALL s", "HDEL s a", "HLEN s"] {
        assert_eq!(b.run(line), WRONGTYPE, "{line}");
    }
}

#[test]
fn server_commands() {
    let mut b = Bench::new();
    assert_eq!(b.run("PING"), "+PONG\r\n");
    assert_eq!(b.run("ping hi"), "$2\r\nhi\r\n");
    assert_eq!(b.run("ECHO x"), "$1\r\nx\r\n");
    b.run("MSET a 1 b 2");
    assert_eq!(b.run("DBSIZE"), ":2\r\n");
    assert_eq!(b.run("FLUSHDB"), "+OK\r\n");
    assert_eq!(b.run("DBSIZE"), ":0\r\n");
    b.run("SET a 1");
    assert_eq!(b.run("FLUSHALL ASYNC"), "+OK\r\n");
    assert_eq!(b.run("DBSIZE"), ":0\r\n");
    assert_eq!(b.run("SELECT 0"), "+OK\r\n");
    assert_eq!(b.run("SELECT 1"), "-ERR DB index is out of range\r\n");
    assert_eq!(b.run("CLIENT GETNAME"), "$-1\r\n");
    assert_eq!(b.run("CLIENT SETNAME bench"), "+OK\r\n");
    assert_eq!(b.run("CLIENT GETNAME"), "$5\r\nbench\r\n");
    assert_eq!(b.run("CLIENT ID"), ":1\r\n");
    assert_eq!(b.run("CLIENT SETINFO LIB-NAME redis-rs"), "+OK\r\n");
    assert!(b.run("CLIENT KILL x").starts_with("-ERR unknown subcommand"));
    assert!(b.run("HELLO 2").starts_with("*14\r\n$6\r\nserver\r\n"));
    assert_eq!(b.run("HELLO 3"), "-NOPROTO unsupported protocol version\r\n");
    assert!(b.run("COMMAND COUNT").starts_with(':'));
    assert!(b.run("COMMAND INFO get").starts_with("*1\r\n*6\r\n$3\r\nget\r\n:2\r\n"));
    assert_eq!(b.run("COMMAND DOCS"), "*0\r\n");
    assert_eq!(b.run("CONFIG GET save"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    assert_eq!(b.run("CONFIG GET appendonly"), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    assert!(b.run("CONFIG GET max*").starts_with("*6\r\n"));
    assert!(b.run("CONFIG SET save x").starts_with("-ERR CONFIG SET is not supported"));
    assert_eq!(b.run("NOPE a b"), "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \r\n");
    assert_eq!(b.run("QUIT"), "+OK\r\n");
    assert!(b.client.quit);
}

#[test]
fn info_sections_report_node_stats_and_keyspace() {
    let mut b = Bench::with(ServerConfig { node_id: "kv-9".into(), ..ServerConfig::default() });
    b.run("SET a 1");
    b.run("SET b 2 EX 100");
    b.run("GET a");
    let info = b.run("INFO");
    assert!(info.contains("node_id:kv-9\r\n"), "{info}");
    assert!(info.contains("total_commands_processed:3\r\n"), "{info}");
    assert!(info.contains("db0:keys=2,expires=1"), "{info}");
    assert!(!info.contains("cmdstat_"), "commandstats is not a default section");
    let stats = b.run("INFO commandstats");
    assert!(stats.contains("cmdstat_set:calls=2\r\n") && stats.contains("cmdstat_get:calls=1\r\n"), "{stats}");
}

#[test]
fn auth_and_maxmemory() {
    let mut b = Bench::new();
    assert!(b.run("AUTH x").starts_with("-ERR AUTH <password> called without any password configured"));
    let mut b =
        Bench::with(ServerConfig { requirepass: Some("pw".into()), maxmemory: 2000, ..ServerConfig::default() });
    assert_eq!(b.run("PING"), "-NOAUTH Authentication required.\r\n");
    assert_eq!(b.run("AUTH default pw"), "+OK\r\n");
    let big = "x".repeat(3000);
    assert_eq!(b.run(&format!("SET k {big}")), "+OK\r\n");
    assert_eq!(b.run("SET k2 v"), "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    assert_eq!(b.run("GET k2"), "$-1\r\n", "reads still work");
    assert_eq!(b.run("DEL k"), ":1\r\n", "deletes still work");
    assert_eq!(b.run("SET k2 v"), "+OK\r\n");
}

#[test]
fn subscribed_mode_allows_only_pubsub_commands() {
    let mut b = Bench::new();
    assert_eq!(b.run("UNSUBSCRIBE"), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    assert_eq!(
        b.run("SUBSCRIBE a b"),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
    );
    assert!(b.run("GET k").contains("only (P|S)SUBSCRIBE"));
    assert_eq!(b.run("PING"), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(b.shared.broker.publish(&Bytes::from("a"), &Bytes::from("m")), 1);
    assert_eq!(
        b.run("UNSUBSCRIBE"),
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
    );
    assert_eq!(b.run("GET k"), "$-1\r\n");
    assert_eq!(b.shared.broker.publish(&Bytes::from("a"), &Bytes::from("m")), 0);
}
