//! `/admin/members`: the team's members and their roles. Adding an address that has no
//! account yet creates one, and its initial password is shown here once.

use flowtrail_types::admin::{AddedMember, Member};
use leptos::prelude::*;

use super::{AdminGuard, Confirm, article};
use crate::api::admin::{AddMember, ChangeRole, RemoveMember, list_members};
use crate::pages::{LoadError, error_text};

/// Roles and what each may do, in the order the forms offer them.
const ROLES: [(&str, &str); 3] = [
    ("viewer", "reads flows"),
    ("member", "reads and pins flows"),
    (
        "admin",
        "also manages members, keys, retention and dead letters",
    ),
];

#[component]
pub fn MembersPage() -> impl IntoView {
    let add = ServerAction::<AddMember>::new();
    let change = ServerAction::<ChangeRole>::new();
    let remove = ServerAction::<RemoveMember>::new();
    // Every successful change refetches the list.
    let members = Resource::new(
        move || {
            (
                add.version().get(),
                change.version().get(),
                remove.version().get(),
            )
        },
        |_| list_members(),
    );
    view! {
        <AdminGuard title="Members" hint="Who can use this team, and what each may do.">
            <AddMemberForm add/>
            <Outcome change remove/>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading members…"</p> }>
                {move || Suspend::new(async move {
                    match members.await {
                        Ok(members) => view! { <MemberTable members change remove/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Transition>
        </AdminGuard>
    }
}

fn role_options(current: &str) -> impl IntoView + use<> {
    ROLES
        .iter()
        .map(|(role, what)| {
            view! { <option value=*role selected=*role == current>{format!("{role} — {what}")}</option> }
        })
        .collect_view()
}

#[component]
fn AddMemberForm(add: ServerAction<AddMember>) -> impl IntoView {
    let error = move || {
        add.value()
            .get()
            .and_then(Result::err)
            .map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })
    };
    view! {
        <ActionForm action=add attr:class="card form-row" attr:aria-labelledby="add-member-heading">
            <h2 id="add-member-heading">"Add a member"</h2>
            <div class="fields">
                <label>
                    "E-mail"
                    <input type="email" name="email" required autocomplete="off"/>
                </label>
                <label>
                    "Role"
                    <select name="role">{role_options("member")}</select>
                </label>
                <button type="submit">"Add member"</button>
            </div>
            <p class="hint">"An address without an account gets one, with a password shown here once."</p>
            {error}
        </ActionForm>
        <div aria-live="polite">
            {move || add.value().get().and_then(Result::ok).map(|added| view! { <Added added/> })}
        </div>
    }
}

/// The member just added, with their initial password when their account is new.
#[component]
fn Added(added: AddedMember) -> impl IntoView {
    let AddedMember {
        member,
        initial_password,
    } = added;
    let said = format!(
        "{} is now {} {} of the team.",
        member.email,
        article(&member.role),
        member.role
    );
    match initial_password {
        Some(password) => view! {
            <div class="secret" role="status">
                <p><strong>{said}</strong></p>
                <label>
                    "Initial password (shown only this once)"
                    <input type="text" readonly value=password class="secret-value" spellcheck="false" autocomplete="off"/>
                </label>
                <p>
                    "Copy it now (select it, then Ctrl+C or ⌘C) and hand it over safely: "
                    "it will not be shown again. Only its hash is stored."
                </p>
            </div>
        }
        .into_any(),
        None => view! {
            <p class="notice" role="status">
                {said}" They already had an account and sign in with their own password."
            </p>
        }
        .into_any(),
    }
}

/// What the last role change or removal came to (a conflict, such as the last admin, says
/// so here).
#[component]
fn Outcome(change: ServerAction<ChangeRole>, remove: ServerAction<RemoveMember>) -> impl IntoView {
    let changed = move || {
        change.value().get().map(|result| match result {
            Ok(member) => view! {
                <p class="notice" role="status">
                    {format!("{} is now {} {}.", member.email, article(&member.role), member.role)}
                </p>
            }
            .into_any(),
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    let removed = move || {
        remove.value().get().map(|result| match result {
            Ok(_) => view! { <p class="notice" role="status">"The member was removed from the team."</p> }
                .into_any(),
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    view! { <div class="outcome">{changed}{removed}</div> }
}

#[component]
fn MemberTable(
    members: Vec<Member>,
    change: ServerAction<ChangeRole>,
    remove: ServerAction<RemoveMember>,
) -> impl IntoView {
    let rows = members
        .into_iter()
        .map(|member| view! { <MemberRow member change remove/> })
        .collect_view();
    view! {
        <table class="data admin-table">
            <caption>"Members of the team"</caption>
            <thead>
                <tr>
                    <th scope="col">"E-mail"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Remove"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
fn MemberRow(
    member: Member,
    change: ServerAction<ChangeRole>,
    remove: ServerAction<RemoveMember>,
) -> impl IntoView {
    let Member {
        user_id,
        email,
        role,
    } = member;
    let question = format!("Remove {email} from the team?");
    let (role_label, save_label, subject) = (
        format!("Role of {email}"),
        format!(" of {email}"),
        format!("Remove {email}"),
    );
    view! {
        <tr>
            <th scope="row">{email}</th>
            <td>
                <ActionForm action=change attr:class="inline-form">
                    <input type="hidden" name="user_id" value=user_id.to_string()/>
                    <label>
                        <span class="sr-only">{role_label}</span>
                        <select name="role">{role_options(&role)}</select>
                    </label>
                    <button type="submit" class="secondary">
                        "Save role"<span class="sr-only">{save_label}</span>
                    </button>
                </ActionForm>
            </td>
            <td>
                <Confirm
                    id=format!("remove-{user_id}")
                    ask="Remove"
                    subject=subject
                    question=question
                >
                    <ActionForm action=remove attr:class="inline-form">
                        <input type="hidden" name="user_id" value=user_id.to_string()/>
                        <button type="submit" class="danger">"Yes, remove"</button>
                    </ActionForm>
                </Confirm>
            </td>
        </tr>
    }
}
