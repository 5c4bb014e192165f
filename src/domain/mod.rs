//! Pure domain types: parsed phone numbers and email addresses (a code's recipient is one of them), channels, one-time codes, verification records and
//! their lifecycle rules. Nothing here performs I/O; every value that exists is a valid one.

pub mod channel;
pub mod code;
pub mod email;
pub mod phone;
pub mod recipient;
pub mod sender_id;
pub mod time;
pub mod verification;

pub use channel::{Channel, ChannelError};
pub use code::{CodeError, CodeLength, OtpCode};
pub use email::{EmailAddress, EmailError};
pub use phone::{NumberType, PhoneNumber, PhoneNumberError, Region};
pub use recipient::{Recipient, RecipientError};
pub use sender_id::{SenderId, SenderIdError, SenderIds};
pub use time::{Rfc3339, Timestamp};
pub use verification::{
    AttemptSid, CheckOutcome, CheckRefusal, CheckUpdate, CheckVerdict, Counters, Lifecycle,
    LiveState, MessageFacts, SendAttempt, Verification, VerificationSid, VerificationStatus,
};
