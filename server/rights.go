package server

// rightsRoutes are the data-subject rights and privacy-centre routes.
func (s *Server) rightsRoutes() []route { return nil }
