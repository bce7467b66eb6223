package server

// engineRoutes are the label, derivation and audience routes.
func (s *Server) engineRoutes() []route { return nil }
