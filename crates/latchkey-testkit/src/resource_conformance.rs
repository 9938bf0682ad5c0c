//! The run-time resource registry part of the store conformance suite (run by
//! [`crate::store_conformance!`]): resources read back exactly, identifiers compare byte for
//! byte, and of concurrent adds of one identifier exactly one wins.

use latchkey_core::indicator::{RegisteredResource, ResourceUri};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::Store;

fn resource(id: &str) -> RegisteredResource {
    RegisteredResource::new(ResourceUri::parse(id).expect("resource identifier"))
}

/// A resource reads back exactly (long and non-ASCII values too); adding an identifier twice,
/// or updating or deleting an unknown one, says so; the list is sorted by identifier.
pub async fn resources_round_trip_exactly<S: Store>(store: S) {
    let long = format!("https://api.example/{}", "p".repeat(1900));
    let full = RegisteredResource {
        name: Some("Données — API ✓".into()),
        scopes: Some(ScopeSet::parse("read write").expect("scope")),
        clients: Some(vec![
            "gateway".into(),
            "https://app.example/client.json".into(),
        ]),
        ..resource("https://mcp.example/mcp")
    };
    let bare = resource(&long);
    let narrow = RegisteredResource {
        scopes: Some(ScopeSet::empty()),
        clients: Some(Vec::new()),
        ..resource("urn:example:narrow")
    };
    for r in [&full, &bare, &narrow] {
        assert!(store.create_resource(r).await.expect("create"), "{}", r.id);
    }
    for r in [&full, &bare, &narrow] {
        let got = store.get_resource(r.id.as_str()).await.expect("get");
        assert_eq!(got.as_ref(), Some(r), "{}", r.id);
    }
    // Byte for byte: another case or a trailing slash is another resource.
    for other in [
        "https://mcp.example/MCP",
        "https://mcp.example/mcp/",
        "https://mcp.example/mc",
    ] {
        assert_eq!(
            store.get_resource(other).await.expect("get"),
            None,
            "{other}"
        );
    }
    // Adding an existing identifier changes nothing.
    let again = RegisteredResource {
        name: Some("other".into()),
        ..resource("https://mcp.example/mcp")
    };
    assert!(!store.create_resource(&again).await.expect("create twice"));
    assert_eq!(
        store
            .get_resource("https://mcp.example/mcp")
            .await
            .expect("get"),
        Some(full.clone())
    );
    // Updating replaces every field; updating an unknown one adds nothing.
    let updated = RegisteredResource {
        name: None,
        scopes: Some(ScopeSet::parse("tools").expect("scope")),
        clients: None,
        ..resource("https://mcp.example/mcp")
    };
    assert!(store.update_resource(&updated).await.expect("update"));
    assert!(store.update_resource(&updated).await.expect("same update"));
    assert_eq!(
        store
            .get_resource("https://mcp.example/mcp")
            .await
            .expect("get"),
        Some(updated.clone())
    );
    let unknown = resource("https://unknown.example/");
    assert!(
        !store
            .update_resource(&unknown)
            .await
            .expect("update unknown")
    );
    assert_eq!(
        store
            .get_resource("https://unknown.example/")
            .await
            .expect("get"),
        None
    );
    let listed: Vec<String> = store
        .list_resources()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id.as_str().to_owned())
        .collect();
    let mut expected = vec![
        updated.id.to_string(),
        long.clone(),
        "urn:example:narrow".to_owned(),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(store.delete_resource(&long).await.expect("delete"));
    assert!(!store.delete_resource(&long).await.expect("delete twice"));
    assert_eq!(store.get_resource(&long).await.expect("get"), None);
    assert_eq!(store.list_resources().await.expect("list").len(), 2);
}

/// Of concurrent adds of one identifier, exactly one wins, and its fields are the ones kept.
pub async fn concurrent_resource_creates_have_exactly_one_winner<S: Store>(store: S) {
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = RegisteredResource {
                name: Some(format!("writer {n}")),
                ..resource("https://race.example/api")
            };
            (n, store.create_resource(&r).await.expect("create"))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (n, won) = task.await.expect("task");
        if won {
            winners.push(n);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let kept = store
        .get_resource("https://race.example/api")
        .await
        .expect("get")
        .expect("one resource");
    assert_eq!(kept.name, Some(format!("writer {}", winners[0])));
}
