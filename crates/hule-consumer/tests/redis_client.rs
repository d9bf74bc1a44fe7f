//! The multiplexed Redis client against the local server: many concurrent callers on two pipelined connections
//! each get their own reply, and a connection killed by the server is replaced.

use std::sync::Arc;

use hule_consumer::redis::{RedisClient, Reply};

fn redis_url() -> String {
    std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_their_own_replies() {
    let client = Arc::new(RedisClient::new(&redis_url(), 2).expect("url"));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let tasks: Vec<_> = (0..2_000)
        .map(|i| {
            let (client, run) = (client.clone(), run.clone());
            tokio::spawn(async move {
                let key = format!("hule-test:mux:{run}:{i}");
                let value = format!("value-{i}");
                let set = client
                    .call(&[b"SET", key.as_bytes(), value.as_bytes(), b"PX", b"60000"])
                    .await
                    .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
                assert_eq!(set, Reply::Simple("OK".into()));
                let got = client.call(&[b"GET", key.as_bytes()]).await.expect("get");
                assert_eq!(got, Reply::Bulk(Some(value.into_bytes())), "key {i}");
                client.call(&[b"DEL", key.as_bytes()]).await.expect("del");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

#[tokio::test]
async fn a_killed_connection_is_replaced() {
    let client = RedisClient::new(&redis_url(), 1).expect("url");
    let Reply::Int(id) = client.call(&[b"CLIENT", b"ID"]).await.expect("client id") else {
        panic!("CLIENT ID is an integer")
    };
    let admin = RedisClient::new(&redis_url(), 1).expect("url");
    let id = id.to_string();
    let killed = admin
        .call(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()])
        .await
        .expect("kill");
    assert_eq!(killed, Reply::Int(1));
    // The first call may meet the dead connection and report it; a new one is opened by then.
    let mut answered = None;
    for _ in 0..3 {
        if let Ok(reply) = client.call(&[b"PING"]).await {
            answered = Some(reply);
            break;
        }
    }
    assert_eq!(answered, Some(Reply::Simple("PONG".into())));
    let Reply::Int(new_id) = client.call(&[b"CLIENT", b"ID"]).await.expect("client id") else {
        panic!("CLIENT ID is an integer")
    };
    assert_ne!(new_id.to_string(), id, "a new connection");
}
