//! Teams, users and API keys: what a team sees, who signs in, which keys work.

use flowtrail_domain::Error;
use flowtrail_domain::accounts::{Role, Scope};

use crate::fixture::{flow, fresh, query, store};

#[tokio::test]
async fn flows_are_scoped_to_their_team() {
    let f = fresh().await;
    let other = f.services.metadata.ensure_team("other").await.unwrap();
    let record = flow("p", 0, &[]);
    store(&f, &record).await;
    let metadata = &f.services.metadata;
    assert!(
        metadata
            .get_flow(other.id, record.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        metadata
            .list_flows(other.id, &query())
            .await
            .unwrap()
            .flows
            .is_empty()
    );
    assert!(
        metadata
            .step_payload(other.id, record.id, 1)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn users_and_keys() {
    let f = fresh().await;
    let s = &f.services;
    let id = s
        .create_user("Ana@Example.com", "long enough", "default", Role::Admin)
        .await
        .unwrap();
    assert!(matches!(
        s.create_user("ana@example.com", "long enough", "default", Role::Member)
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.create_user("bob@example.com", "short", "default", Role::Member)
            .await,
        Err(Error::Validation { .. })
    ));
    let user = s
        .authenticate("ana@example.com", "long enough")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.memberships[0].role, Role::Admin);
    assert_eq!(user.memberships[0].team.slug, "default");
    assert!(
        s.authenticate("ana@example.com", "wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!user.password_hash.contains("long enough"));

    let secret = s
        .create_api_key("default", "pipeline", Scope::Ingest)
        .await
        .unwrap();
    let key = s.api_key(&secret).await.unwrap().unwrap();
    assert_eq!(
        (key.scope, key.team.id, key.name.as_str()),
        (Scope::Ingest, f.team, "pipeline")
    );
    assert!(s.api_key("ftk_not_a_key").await.unwrap().is_none());
    assert!(matches!(
        s.create_api_key("nope", "x", Scope::All).await,
        Err(Error::NotFound("team"))
    ));
}
