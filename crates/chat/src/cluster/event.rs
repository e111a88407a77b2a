//! A room's events as the room scripts publish them: length-prefixed fields (`LEN:bytes`),
//! since a message is any 256 bytes. Fields: event number, kind (`E`, `L`, `C`), instance,
//! session (empty for a disconnect or a reap), member (`UNIQUE_ID:USER_ID`); then, for
//! `E`, the members before it, oldest first; for `C`, the message.

/// One member of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoomMember {
    pub(crate) unique_id: i64,
    pub(crate) user_id: Vec<u8>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum What {
    /// The member entered; these were there before it, oldest first.
    Enter(Vec<RoomMember>),
    /// The member left (or was reaped).
    Leave,
    /// The member said this.
    Chat(Vec<u8>),
}

/// One event of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoomEvent {
    pub(crate) room: usize,
    /// The room's event number: 1, 2, 3, ... in the one order every instance sees.
    pub(crate) seq: u64,
    /// The instance the member's session is on.
    pub(crate) instance: Vec<u8>,
    /// The session (its id), or empty.
    pub(crate) session: Vec<u8>,
    pub(crate) member: RoomMember,
    pub(crate) what: What,
}

/// The member as the room's set holds it.
pub(crate) fn member_key(unique_id: i64, user_id: &str) -> String {
    format!("{unique_id}:{user_id}")
}

fn member(field: &[u8]) -> Option<RoomMember> {
    let colon = field.iter().position(|&b| b == b':')?;
    let unique_id = std::str::from_utf8(&field[..colon]).ok()?.parse().ok()?;
    Some(RoomMember {
        unique_id,
        user_id: field[colon + 1..].to_vec(),
    })
}

/// The fields of `payload`, or `None` if it is not a sequence of `LEN:bytes`.
fn fields(mut payload: &[u8]) -> Option<Vec<&[u8]>> {
    let mut fields = Vec::new();
    while !payload.is_empty() {
        let colon = payload.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&payload[..colon]).ok()?.parse().ok()?;
        let rest = &payload[colon + 1..];
        if rest.len() < len {
            return None;
        }
        fields.push(&rest[..len]);
        payload = &rest[len..];
    }
    Some(fields)
}

/// The event published on room `room`'s channel, or `None` if it is not one.
pub(crate) fn parse(room: usize, payload: &[u8]) -> Option<RoomEvent> {
    let fields = fields(payload)?;
    let [seq, kind, instance, session, who, rest @ ..] = fields.as_slice() else {
        return None;
    };
    let what = match (*kind, rest) {
        (b"E", list) => What::Enter(list.iter().map(|m| member(m)).collect::<Option<_>>()?),
        (b"L", []) => What::Leave,
        (b"C", [message]) => What::Chat(message.to_vec()),
        _ => return None,
    };
    Some(RoomEvent {
        room,
        seq: std::str::from_utf8(seq).ok()?.parse().ok()?,
        instance: instance.to_vec(),
        session: session.to_vec(),
        member: member(who)?,
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_as_the_scripts_write_them() {
        let enter = parse(3, b"2:121:E1:a2:177:5:alice5:4:x:y5:5:b:c").unwrap();
        assert_eq!(enter.room, 3);
        assert_eq!(enter.seq, 12);
        assert_eq!(enter.instance, b"a");
        assert_eq!(enter.session, b"17");
        assert_eq!(enter.member.unique_id, 5);
        assert_eq!(enter.member.user_id, b"alice");
        assert_eq!(
            enter.what,
            What::Enter(vec![
                RoomMember {
                    unique_id: 4,
                    user_id: b"x:y".to_vec()
                },
                RoomMember {
                    unique_id: 5,
                    user_id: b"b:c".to_vec()
                },
            ])
        );
        let chat = parse(0, b"1:11:C1:a0:3:7:b6:x\0:y\n!").unwrap();
        assert_eq!(chat.what, What::Chat(b"x\0:y\n!".to_vec()));
        assert_eq!(chat.session, b"");
        assert_eq!(parse(0, b"1:11:L1:a0:3:7:b").unwrap().what, What::Leave);
        assert_eq!(parse(0, b"1:11:L1:a0:3:7:b1:x"), None);
        assert_eq!(parse(0, b"9:1"), None);
    }
}
