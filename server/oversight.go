package server

// oversightRoutes are the filing, records, evidence, breach and
// violation-report routes for auditors and regulators.
func (s *Server) oversightRoutes() []route { return nil }
