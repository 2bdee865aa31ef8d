//! Rooms (protocol 1.1) between the clients of both runtimes, against both servers: joins
//! and their answers, lines that stay in their room, leaving, the room list, and a file to
//! every member of a room (one ordinary transfer each).

use tidings_e2e::*;
use tidings_host::client::RoomCount;
use tidings_host::rooms::Rooms;

/// The default room of a server with the default config.
const LOBBY: &str = "lobby";

fn lines_stay_in_their_room_and_members_are_kept(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    smol::block_on(async {
        let ann = smol_client::connect(server.addr, "ann").await;
        let bob = std_client::connect(server.addr, "bob");
        let cid = smol_client::connect(server.addr, "cid").await;
        // What ann was told, kept as an application behind the handle keeps it.
        let mut ann_rooms = Rooms::new();

        ann.join("team").await.unwrap();
        let ev = smol_client::wait_for(&ann, |e| {
            ann_rooms.apply(e);
            matches!(e, ClientEvent::RoomEntered { default: false, .. })
        })
        .await;
        assert_eq!(
            ev,
            ClientEvent::RoomEntered {
                room: "team".into(),
                members: vec!["ann".into()],
                default: false
            }
        );
        assert_eq!(ann_rooms.default_room(), Some(LOBBY));
        // Another spelling of one room: the server's spelling comes back.
        bob.join("TEAM").unwrap();
        let ev = std_client::wait(&bob, |e| {
            matches!(e, ClientEvent::RoomEntered { default: false, .. })
        });
        assert!(
            matches!(&ev, ClientEvent::RoomEntered { room, members, .. }
                if room == "team" && members == &["ann", "bob"]),
            "{ev:?}"
        );
        smol_client::wait_for(&ann, |e| {
            ann_rooms.apply(e);
            matches!(e, ClientEvent::RoomJoined { name, .. } if name == "bob")
        })
        .await;
        assert_eq!(ann_rooms.get("Team").unwrap().members(), ["ann", "bob"]);
        assert_eq!(
            ann_rooms.get(LOBBY).unwrap().members(),
            ["ann", "bob", "cid"]
        );

        ann.say_in("team", "team only").await.unwrap();
        let ev = std_client::wait(&bob, |e| matches!(e, ClientEvent::RoomText { .. }));
        assert_eq!(
            ev,
            ClientEvent::RoomText {
                room: "team".into(),
                from: "ann".into(),
                text: "team only".into()
            }
        );
        // The default room's lines come as 1.0 chat, to everyone in it.
        ann.say("everyone").await.unwrap();
        let seen =
            smol_client::collect_until(&cid, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            !seen
                .iter()
                .any(|e| matches!(e, ClientEvent::RoomText { .. })),
            "cid is not in team: {seen:?}"
        );
        assert!(
            matches!(seen.last(), Some(ClientEvent::Text { text, private: false, .. }) if text == "everyone")
        );

        cid.request_rooms().await.unwrap();
        let ev = smol_client::wait_for(&cid, |e| matches!(e, ClientEvent::RoomList(_))).await;
        let count = |name: &str, members| RoomCount {
            name: name.into(),
            members,
        };
        assert_eq!(
            ev,
            ClientEvent::RoomList(vec![count(LOBBY, 3), count("team", 2)])
        );

        // bob leaves: his answer, ann's news, and a line from bob is refused.
        bob.leave("team").unwrap();
        std_client::wait(&bob, |e| {
            *e == ClientEvent::RoomExited {
                room: "team".into(),
                removed: false,
            }
        });
        smol_client::wait_for(&ann, |e| {
            ann_rooms.apply(e);
            matches!(e, ClientEvent::RoomLeft { name, removed: false, .. } if name == "bob")
        })
        .await;
        assert_eq!(ann_rooms.get("team").unwrap().members(), ["ann"]);
        bob.say_in("team", "still here?").unwrap();
        let ev = std_client::wait(&bob, |e| matches!(e, ClientEvent::Notice { .. }));
        assert!(
            matches!(
                &ev,
                ClientEvent::Notice {
                    code: ErrorCode::NotMember,
                    ..
                }
            ),
            "{ev:?}"
        );
        // An invalid room name: refused, and the connection stays.
        cid.join("two words").await.unwrap();
        let ev = smol_client::wait_for(&cid, |e| matches!(e, ClientEvent::Notice { .. })).await;
        assert!(
            matches!(
                &ev,
                ClientEvent::Notice {
                    code: ErrorCode::RoomRefused,
                    ..
                }
            ),
            "{ev:?}"
        );
        cid.say("still connected").await.unwrap();
        smol_client::wait_for(
            &ann,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "still connected"),
        )
        .await;
    });
}

fn a_file_to_each_member_of_a_room_arrives_whole(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let dir = temp_dir();
    let file = dir.path().join("room.bin");
    make_file(&file, 2 << 20);
    smol::block_on(async {
        let sender = smol_client::connect(server.addr, "ann").await;
        let mut receivers = Vec::new();
        for name in ["bob", "cid"] {
            let down = dir.path().join(name);
            std::fs::create_dir(&down).unwrap();
            let client = smol_client::connect_receiver(server.addr, name, down).await;
            client.join("team").await.unwrap();
            smol_client::wait_for(&client, |e| {
                matches!(e, ClientEvent::RoomEntered { default: false, .. })
            })
            .await;
            receivers.push(client);
        }
        sender.join("team").await.unwrap();
        let ClientEvent::RoomEntered { members, .. } = smol_client::wait_for(&sender, |e| {
            matches!(e, ClientEvent::RoomEntered { default: false, .. })
        })
        .await
        else {
            unreachable!()
        };
        assert_eq!(members, ["bob", "cid", "ann"], "the joiner last");
        // One ordinary transfer to each other member.
        for to in members.iter().filter(|m| *m != "ann") {
            sender.send_file(to, &file).await.unwrap();
        }
        for client in &receivers {
            let got = smol_client::received(client).await;
            assert_same_file(&got, &file);
        }
        let mut sent = 0;
        while sent < 2 {
            if let ClientEvent::Sent { .. } =
                smol_client::wait_for(&sender, |e| matches!(e, ClientEvent::Sent { .. })).await
            {
                sent += 1;
            }
        }
    });
}

for_both_servers! {
    native: [
        lines_stay_in_their_room_and_members_are_kept,
        a_file_to_each_member_of_a_room_arrives_whole,
    ],
}
