package msgauth

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
)

// checkDKIM verifies the first maxSignatures DKIM signatures of msg (RFC
// 6376 §6). A message whose header cannot be read at all gets one
// permerror result.
func checkDKIM(ctx context.Context, r Resolver, msg io.Reader) []DKIMResult {
	verifs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return r.LookupTXT(ctx, name) },
		MaxVerifications: maxSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return []DKIMResult{{Value: authres.ResultPermError, Reason: err.Error()}}
	}
	var out []DKIMResult
	for _, v := range verifs {
		d := DKIMResult{Value: authres.ResultPass, Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			d.Value = authres.ResultTempError
		case dkim.IsPermFail(v.Err):
			d.Value = authres.ResultPermError
		default:
			// A signature that does not verify (RFC 8601 §2.7.1 fail):
			// a wrong body hash or signature.
			d.Value = authres.ResultFail
		}
		if v.Err != nil {
			d.Reason = v.Err.Error()
		}
		out = append(out, d)
	}
	return out
}
