require ["imap4flags", "fileinto", "variables", "relational", "comparator-i;ascii-numeric"];

if header :contains "from" "boss@frobnitzm.example.edu" {
    setflag "flagvar" "\\Flagged";
    fileinto :flags "${flagvar}" "INBOX.From Boss";
}

addflag "flagvar" "\\Deleted";
addflag "flagvar" "\\Answered";
addflag "flagvar" ["\\Deleted", "\\Answered"];
addflag "flagvar" "\\Deleted \\Answered";
addflag "flagvar" "\\Answered \\Deleted";
if string :is "${flagvar}" "\\Flagged \\Deleted \\Answered" {
    fileinto "flagvar ok";
}

if header :contains "Disposition-Notification-To"
    "mel@example.com" {
     addflag "flagvar" "$MDNRequired";
}
if header :contains "from" "imap@cac.washington.example.edu" {
    removeflag "flagvar" "$MDNRequired";
    fileinto :flags "${flagvar}" "INBOX.imap-list";
}

set "MyVar" "NonJunk Junk gnus-forward $Forwarded NotJunk JunkRecorded $Junk $NotJunk";
if hasflag :contains "MyVar" "Junk" { fileinto "t1"; }
if hasflag :contains "MyVar" "forward" { fileinto "t2"; }
if hasflag :contains "MyVar" ["label", "forward"] { fileinto "t3"; }
if hasflag :contains "MyVar" ["junk", "forward"] { fileinto "t4"; }
if hasflag :contains "MyVar" "junk forward" { fileinto "t5"; }
if hasflag :contains "MyVar" "forward junk" { fileinto "t6"; }
if hasflag :contains "MyVar" "label" { fileinto "f7"; }
if hasflag :contains "MyVar" ["label1", "label2"] { fileinto "f8"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "2" { fileinto "t9"; }
if hasflag :is ["MyVar", "flagvar"] "\\answered" { fileinto "t10"; }
fileinto :flags "\\Deleted" "INBOX.From Boss";
keep :flags "${MyVar}";
