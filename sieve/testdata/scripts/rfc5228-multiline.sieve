#
# Example Sieve Filter (RFC 3028 §9, with reject from RFC 5429)
# Declare any optional features or extension used by the script
#
require ["fileinto", "reject"];

#
# Reject any large messages (note that the four leading dots get
# "stuffed" to three)
#
if size :over 1M
        {
        reject text:
Please do not send me large attachments.
Put your file on a server and send me the URL.
Thank you.
.... Fred
.
;
        stop;
        }
/* bracket
   comment */ if /* inside */ true { fileinto /* here too */ "after" ; }
