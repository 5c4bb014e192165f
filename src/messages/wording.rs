//! The built-in wording, one entry per locale verifyd writes messages in (the languages Twilio
//! Verify offers, plus the regional variants whose wording differs). Our own sentences, kept
//! short: the code sentence fits one SMS with a 6-digit code and a short service name in its
//! script's encoding (a table test holds every entry to that).
//!
//! Each entry has four pieces, with the placeholders `{code}`, `{service}` and `{ttl}`
//! (minutes): the code sentence without a service name (`/mfa`), with one (`/v2`, overrides),
//! the do-not-share sentence (with its own leading punctuation, appended when a service asks for
//! it) and the expiry sentence (email and voice).

/// One locale's built-in wording.
#[derive(Debug, PartialEq, Eq)]
pub struct Wording {
    /// The BCP 47 tag (`en`, `pt-BR`, `zh-HK`).
    pub tag: &'static str,
    /// The language's English name, for the docs.
    pub name: &'static str,
    /// The code sentence when there is no service name.
    pub code: &'static str,
    /// The code sentence with the service's name.
    pub service: &'static str,
    /// Appended to the code sentence when the do-not-share warning is on.
    pub dont_share: &'static str,
    /// How long the code lasts, a sentence of its own.
    pub expires: &'static str,
    /// The language tag of the text-to-speech voice that reads the code on a call.
    pub voice: &'static str,
}

macro_rules! wording {
    ($tag:literal, $name:literal, $voice:literal,
     $code:expr, $service:expr, $dont_share:expr, $expires:expr) => {
        Wording {
            tag: $tag,
            name: $name,
            code: $code,
            service: $service,
            dont_share: $dont_share,
            expires: $expires,
            voice: $voice,
        }
    };
}

const EN_CODE: &str = "Your verification code is: {code}";
const EN_SERVICE: &str = "Your {service} verification code is: {code}";
const EN_DONT_SHARE: &str = ". Don't share this code with anyone: we will never ask you for it.";
const EN_EXPIRES: &str = "It expires in {ttl} minutes.";

/// Every built-in locale, ordered by tag.
pub static WORDINGS: &[Wording] = &[
    wording!(
        "af",
        "Afrikaans",
        "af-ZA",
        "Jou verifikasiekode is: {code}",
        "Jou {service}-verifikasiekode is: {code}",
        ". Moenie hierdie kode met iemand deel nie; ons sal nooit daarvoor vra nie.",
        "Dit verval oor {ttl} minute."
    ),
    wording!(
        "ar",
        "Arabic",
        "ar-XA",
        "رمز التحقق الخاص بك هو: {code}",
        "رمز التحقق الخاص بك في {service} هو: {code}",
        ". لا تشارك هذا الرمز مع أي شخص؛ لن نطلبه منك أبدًا.",
        "الرمز صالح لمدة {ttl} دقيقة."
    ),
    wording!(
        "bg",
        "Bulgarian",
        "bg-BG",
        "Вашият код за потвърждение е: {code}",
        "Вашият код за потвърждение за {service} е: {code}",
        ". Не споделяйте този код с никого; никога няма да ви го поискаме.",
        "Кодът е валиден {ttl} минути."
    ),
    wording!(
        "bn",
        "Bengali",
        "bn-IN",
        "আপনার যাচাইকরণ কোড: {code}",
        "আপনার {service} যাচাইকরণ কোড: {code}",
        "। এই কোডটি কারও সাথে শেয়ার করবেন না; আমরা কখনও এটি চাইব না।",
        "কোডটি {ttl} মিনিট পর্যন্ত বৈধ।"
    ),
    wording!(
        "ca",
        "Catalan",
        "ca-ES",
        "El teu codi de verificació és: {code}",
        "El teu codi de verificació de {service} és: {code}",
        ". No el comparteixis amb ningú; mai no te'l demanarem.",
        "Caduca d'aquí a {ttl} minuts."
    ),
    wording!(
        "cs",
        "Czech",
        "cs-CZ",
        "Váš ověřovací kód je: {code}",
        "Váš ověřovací kód pro {service} je: {code}",
        ". Kód nikomu nesdělujte; nikdy vás o něj nebudeme žádat.",
        "Platnost kódu vyprší za {ttl} minut."
    ),
    wording!(
        "da",
        "Danish",
        "da-DK",
        "Din bekræftelseskode er: {code}",
        "Din bekræftelseskode til {service} er: {code}",
        ". Del ikke koden med nogen; vi beder dig aldrig om den.",
        "Den udløber om {ttl} minutter."
    ),
    wording!(
        "de",
        "German",
        "de-DE",
        "Ihr Bestätigungscode lautet: {code}",
        "Ihr {service}-Bestätigungscode lautet: {code}",
        ". Geben Sie diesen Code an niemanden weiter; wir werden Sie nie danach fragen.",
        "Er ist {ttl} Minuten gültig."
    ),
    wording!(
        "el",
        "Greek",
        "el-GR",
        "Ο κωδικός επαλήθευσής σας είναι: {code}",
        "Ο κωδικός επαλήθευσής σας για το {service} είναι: {code}",
        ". Μην τον δώσετε σε κανέναν· δεν θα σας τον ζητήσουμε ποτέ.",
        "Λήγει σε {ttl} λεπτά."
    ),
    wording!(
        "en",
        "English",
        "en-US",
        EN_CODE,
        EN_SERVICE,
        EN_DONT_SHARE,
        EN_EXPIRES
    ),
    wording!(
        "en-GB",
        "English (United Kingdom)",
        "en-GB",
        EN_CODE,
        EN_SERVICE,
        EN_DONT_SHARE,
        EN_EXPIRES
    ),
    wording!(
        "es",
        "Spanish",
        "es-ES",
        "Tu código de verificación es: {code}",
        "Tu código de verificación de {service} es: {code}",
        ". No lo compartas con nadie; nunca te lo pediremos.",
        "Caduca en {ttl} minutos."
    ),
    wording!(
        "es-419",
        "Spanish (Latin America)",
        "es-MX",
        "Tu código de verificación es: {code}",
        "Tu código de verificación de {service} es: {code}",
        ". No lo compartas con nadie; nunca te lo vamos a pedir.",
        "Vence en {ttl} minutos."
    ),
    wording!(
        "et",
        "Estonian",
        "et-EE",
        "Sinu kinnituskood on: {code}",
        "Sinu {service} kinnituskood on: {code}",
        ". Ära jaga seda koodi kellegagi; me ei küsi seda sinult kunagi.",
        "Kood aegub {ttl} minuti pärast."
    ),
    wording!(
        "fi",
        "Finnish",
        "fi-FI",
        "Vahvistuskoodisi on: {code}",
        "Vahvistuskoodisi palveluun {service} on: {code}",
        ". Älä kerro koodia kenellekään; emme koskaan kysy sitä sinulta.",
        "Koodi vanhenee {ttl} minuutin kuluttua."
    ),
    wording!(
        "fr",
        "French",
        "fr-FR",
        "Votre code de vérification est : {code}",
        "Votre code de vérification {service} est : {code}",
        ". Ne le communiquez à personne ; nous ne vous le demanderons jamais.",
        "Il expire dans {ttl} minutes."
    ),
    wording!(
        "fr-CA",
        "French (Canada)",
        "fr-CA",
        "Votre code de vérification est: {code}",
        "Votre code de vérification {service} est: {code}",
        ". Ne le communiquez à personne; nous ne vous le demanderons jamais.",
        "Il expire dans {ttl} minutes."
    ),
    wording!(
        "gu",
        "Gujarati",
        "gu-IN",
        "તમારો ચકાસણી કોડ છે: {code}",
        "તમારો {service} ચકાસણી કોડ છે: {code}",
        ". આ કોડ કોઈની સાથે શેર કરશો નહીં; અમે તે ક્યારેય માંગીશું નહીં.",
        "કોડ {ttl} મિનિટ માટે માન્ય છે."
    ),
    wording!(
        "he",
        "Hebrew",
        "he-IL",
        "קוד האימות שלך הוא: {code}",
        "קוד האימות שלך ל-{service} הוא: {code}",
        ". אין למסור את הקוד לאף אחד; לעולם לא נבקש אותו ממך.",
        "הקוד בתוקף למשך {ttl} דקות."
    ),
    wording!(
        "hi",
        "Hindi",
        "hi-IN",
        "आपका सत्यापन कोड है: {code}",
        "आपका {service} सत्यापन कोड है: {code}",
        "। इसे किसी के साथ साझा न करें; हम इसे कभी नहीं मांगेंगे।",
        "यह कोड {ttl} मिनट तक मान्य है।"
    ),
    wording!(
        "hr",
        "Croatian",
        "hr-HR",
        "Vaš kod za potvrdu je: {code}",
        "Vaš kod za potvrdu za {service} je: {code}",
        ". Nemojte ga nikome davati; nikada vas ga nećemo tražiti.",
        "Kod istječe za {ttl} minuta."
    ),
    wording!(
        "hu",
        "Hungarian",
        "hu-HU",
        "Az ellenőrző kódja: {code}",
        "A(z) {service} ellenőrző kódja: {code}",
        ". Senkivel ne ossza meg; soha nem fogjuk elkérni.",
        "A kód {ttl} percig érvényes."
    ),
    wording!(
        "id",
        "Indonesian",
        "id-ID",
        "Kode verifikasi Anda adalah: {code}",
        "Kode verifikasi {service} Anda adalah: {code}",
        ". Jangan bagikan kode ini kepada siapa pun; kami tidak akan pernah memintanya.",
        "Kode berlaku selama {ttl} menit."
    ),
    wording!(
        "it",
        "Italian",
        "it-IT",
        "Il tuo codice di verifica è: {code}",
        "Il tuo codice di verifica {service} è: {code}",
        ". Non condividerlo con nessuno; non te lo chiederemo mai.",
        "Scade tra {ttl} minuti."
    ),
    wording!(
        "ja",
        "Japanese",
        "ja-JP",
        "認証コードは {code} です",
        "{service} の認証コードは {code} です",
        "。このコードは誰にも教えないでください。当社からお尋ねすることはありません。",
        "有効期限は{ttl}分です。"
    ),
    wording!(
        "kn",
        "Kannada",
        "kn-IN",
        "ನಿಮ್ಮ ಪರಿಶೀಲನಾ ಕೋಡ್: {code}",
        "ನಿಮ್ಮ {service} ಪರಿಶೀಲನಾ ಕೋಡ್: {code}",
        ". ಈ ಕೋಡ್ ಅನ್ನು ಯಾರೊಂದಿಗೂ ಹಂಚಿಕೊಳ್ಳಬೇಡಿ; ನಾವು ಇದನ್ನು ಎಂದಿಗೂ ಕೇಳುವುದಿಲ್ಲ.",
        "ಈ ಕೋಡ್ {ttl} ನಿಮಿಷಗಳವರೆಗೆ ಮಾನ್ಯವಾಗಿರುತ್ತದೆ."
    ),
    wording!(
        "ko",
        "Korean",
        "ko-KR",
        "인증 코드는 {code}입니다",
        "{service} 인증 코드는 {code}입니다",
        ". 이 코드를 다른 사람에게 알려주지 마세요. 저희는 절대 코드를 묻지 않습니다.",
        "{ttl}분 후에 만료됩니다."
    ),
    wording!(
        "lt",
        "Lithuanian",
        "lt-LT",
        "Jūsų patvirtinimo kodas: {code}",
        "Jūsų {service} patvirtinimo kodas: {code}",
        ". Niekam jo neatskleiskite; mes niekada jo neprašysime.",
        "Kodas galioja {ttl} min."
    ),
    wording!(
        "ml",
        "Malayalam",
        "ml-IN",
        "നിങ്ങളുടെ സ്ഥിരീകരണ കോഡ്: {code}",
        "നിങ്ങളുടെ {service} സ്ഥിരീകരണ കോഡ്: {code}",
        ". ഈ കോഡ് ആരുമായും പങ്കിടരുത്; ഞങ്ങൾ ഒരിക്കലും ഇത് ആവശ്യപ്പെടില്ല.",
        "ഈ കോഡ് {ttl} മിനിറ്റ് സാധുവാണ്."
    ),
    wording!(
        "mr",
        "Marathi",
        "mr-IN",
        "तुमचा पडताळणी कोड: {code}",
        "तुमचा {service} पडताळणी कोड: {code}",
        ". हा कोड कोणालाही सांगू नका; आम्ही तो कधीही विचारणार नाही.",
        "हा कोड {ttl} मिनिटे वैध आहे."
    ),
    wording!(
        "ms",
        "Malay",
        "ms-MY",
        "Kod pengesahan anda ialah: {code}",
        "Kod pengesahan {service} anda ialah: {code}",
        ". Jangan kongsi kod ini dengan sesiapa; kami tidak akan memintanya.",
        "Kod ini sah selama {ttl} minit."
    ),
    wording!(
        "nb",
        "Norwegian (Bokmål)",
        "nb-NO",
        "Bekreftelseskoden din er: {code}",
        "Bekreftelseskoden din for {service} er: {code}",
        ". Ikke del koden med noen; vi ber deg aldri om den.",
        "Den utløper om {ttl} minutter."
    ),
    wording!(
        "nl",
        "Dutch",
        "nl-NL",
        "Je verificatiecode is: {code}",
        "Je verificatiecode voor {service} is: {code}",
        ". Deel deze code met niemand; wij vragen er nooit om.",
        "De code verloopt over {ttl} minuten."
    ),
    wording!(
        "pa",
        "Punjabi",
        "pa-IN",
        "ਤੁਹਾਡਾ ਪੁਸ਼ਟੀਕਰਨ ਕੋਡ: {code}",
        "ਤੁਹਾਡਾ {service} ਪੁਸ਼ਟੀਕਰਨ ਕੋਡ: {code}",
        "। ਇਹ ਕੋਡ ਕਿਸੇ ਨਾਲ ਸਾਂਝਾ ਨਾ ਕਰੋ; ਅਸੀਂ ਇਹ ਕਦੇ ਨਹੀਂ ਮੰਗਾਂਗੇ।",
        "ਇਹ ਕੋਡ {ttl} ਮਿੰਟ ਲਈ ਵੈਧ ਹੈ।"
    ),
    wording!(
        "pl",
        "Polish",
        "pl-PL",
        "Twój kod weryfikacyjny to: {code}",
        "Twój kod weryfikacyjny {service} to: {code}",
        ". Nie podawaj go nikomu; nigdy nie poprosimy Cię o niego.",
        "Kod wygasa za {ttl} minut."
    ),
    wording!(
        "pt",
        "Portuguese",
        "pt-PT",
        "O seu código de verificação é: {code}",
        "O seu código de verificação {service} é: {code}",
        ". Não o partilhe com ninguém; nunca lho pediremos.",
        "Expira dentro de {ttl} minutos."
    ),
    wording!(
        "pt-BR",
        "Portuguese (Brazil)",
        "pt-BR",
        "Seu código de verificação é: {code}",
        "Seu código de verificação {service} é: {code}",
        ". Não compartilhe este código com ninguém; nunca vamos pedi-lo.",
        "Ele expira em {ttl} minutos."
    ),
    wording!(
        "ro",
        "Romanian",
        "ro-RO",
        "Codul de verificare este: {code}",
        "Codul de verificare {service} este: {code}",
        ". Nu îl dezvăluiți nimănui; nu vi-l vom cere niciodată.",
        "Expiră în {ttl} minute."
    ),
    wording!(
        "ru",
        "Russian",
        "ru-RU",
        "Ваш код подтверждения: {code}",
        "Ваш код подтверждения для {service}: {code}",
        ". Никому не сообщайте этот код; мы никогда его не спросим.",
        "Код действует {ttl} минут."
    ),
    wording!(
        "sk",
        "Slovak",
        "sk-SK",
        "Váš overovací kód je: {code}",
        "Váš overovací kód pre {service} je: {code}",
        ". Nikomu ho neprezrádzajte; nikdy si ho od vás nevypýtame.",
        "Platnosť kódu vyprší o {ttl} minút."
    ),
    wording!(
        "sv",
        "Swedish",
        "sv-SE",
        "Din verifieringskod är: {code}",
        "Din verifieringskod för {service} är: {code}",
        ". Dela inte koden med någon; vi kommer aldrig att be dig om den.",
        "Den går ut om {ttl} minuter."
    ),
    wording!(
        "ta",
        "Tamil",
        "ta-IN",
        "உங்கள் சரிபார்ப்புக் குறியீடு: {code}",
        "உங்கள் {service} சரிபார்ப்புக் குறியீடு: {code}",
        ". இந்தக் குறியீட்டை யாருடனும் பகிர வேண்டாம்; நாங்கள் ஒருபோதும் இதைக் கேட்க மாட்டோம்.",
        "இந்தக் குறியீடு {ttl} நிமிடங்கள் செல்லுபடியாகும்."
    ),
    wording!(
        "te",
        "Telugu",
        "te-IN",
        "మీ ధృవీకరణ కోడ్: {code}",
        "మీ {service} ధృవీకరణ కోడ్: {code}",
        ". ఈ కోడ్‌ను ఎవరితోనూ పంచుకోవద్దు; మేము దీన్ని ఎప్పుడూ అడగము.",
        "ఈ కోడ్ {ttl} నిమిషాల పాటు చెల్లుతుంది."
    ),
    wording!(
        "th",
        "Thai",
        "th-TH",
        "รหัสยืนยันของคุณคือ {code}",
        "รหัสยืนยัน {service} ของคุณคือ {code}",
        " ห้ามบอกรหัสนี้แก่ผู้ใด เราจะไม่ขอรหัสนี้จากคุณ",
        "รหัสมีอายุ {ttl} นาที"
    ),
    wording!(
        "tl",
        "Tagalog",
        "fil-PH",
        "Ang iyong code sa pag-verify ay: {code}",
        "Ang iyong {service} code sa pag-verify ay: {code}",
        ". Huwag itong ibahagi kaninuman; hindi namin ito hihingin sa iyo.",
        "Mag-e-expire ito sa loob ng {ttl} minuto."
    ),
    wording!(
        "tr",
        "Turkish",
        "tr-TR",
        "Doğrulama kodunuz: {code}",
        "{service} doğrulama kodunuz: {code}",
        ". Bu kodu kimseyle paylaşmayın; sizden asla istemeyeceğiz.",
        "Kod {ttl} dakika geçerlidir."
    ),
    wording!(
        "uk",
        "Ukrainian",
        "uk-UA",
        "Ваш код підтвердження: {code}",
        "Ваш код підтвердження для {service}: {code}",
        ". Нікому не повідомляйте цей код; ми ніколи його не попросимо.",
        "Код дійсний {ttl} хвилин."
    ),
    wording!(
        "vi",
        "Vietnamese",
        "vi-VN",
        "Mã xác minh của bạn là: {code}",
        "Mã xác minh {service} của bạn là: {code}",
        ". Không chia sẻ mã này với bất kỳ ai; chúng tôi sẽ không bao giờ hỏi mã này.",
        "Mã có hiệu lực trong {ttl} phút."
    ),
    wording!(
        "zh",
        "Chinese (Simplified)",
        "cmn-CN",
        "您的验证码是：{code}",
        "您的{service}验证码是：{code}",
        "。请勿将验证码告诉任何人，我们绝不会向您索取。",
        "验证码{ttl}分钟内有效。"
    ),
    wording!(
        "zh-HK",
        "Chinese (Traditional)",
        "yue-HK",
        "您的驗證碼是：{code}",
        "您的{service}驗證碼是：{code}",
        "。請勿將驗證碼告訴任何人，我們絕不會向您索取。",
        "驗證碼於{ttl}分鐘內有效。"
    ),
];

/// Tags that name a built-in locale under another name: `zh-CN` and `zh-Hans` are the
/// simplified Chinese of `zh`, `zh-TW` and `zh-Hant` the traditional of `zh-HK`, `no` is
/// Norwegian Bokmål, `fil` is Filipino (Tagalog).
pub static ALIASES: &[(&str, &str)] = &[
    ("zh-CN", "zh"),
    ("zh-Hans", "zh"),
    ("zh-SG", "zh"),
    ("zh-TW", "zh-HK"),
    ("zh-MO", "zh-HK"),
    ("zh-Hant", "zh-HK"),
    ("no", "nb"),
    ("fil", "tl"),
];
